"""Where you stand in a live challenge: the public board and your own entries, read from the course exchange.

While a challenge runs, the course's challenge service scores every entry you submit within minutes and
publishes the board into the exchange (``<exchange>/<course>/live/<assignment>/``).  In a notebook::

    from mlphys.course.live import show_board, show_my_entries
    show_board("03_autoencoder_challenge")        # everyone's best counting entry, by the public figure
    show_my_entries("03_autoencoder_challenge")   # each entry you handed in: scored, waiting or refused, and why

Only the public figures appear until the challenge ends; then the final board ranks by the private split.
The exchange and the course are found in nbgrader's configuration, as ``nbgrader submit`` finds them.
"""

from __future__ import annotations

import html
import json
import typing as t
from pathlib import Path


def _where(exchange: str | Path | None, course: str | None) -> tuple[Path, str]:
    if exchange is not None and course is not None:
        return Path(exchange), course
    from nbgrader.apps.baseapp import NbGrader

    app = NbGrader()
    app.load_config_file()
    config = app.config
    found_exchange = exchange or config.Exchange.get("root", "/srv/nbgrader/exchange")
    found_course = course or config.CourseDirectory.get("course_id", "")
    if not found_course:
        raise RuntimeError("no course id in nbgrader's configuration: pass course='...' (ask your instructor)")
    return Path(str(found_exchange)), str(found_course)


def _live(assignment: str, exchange: str | Path | None, course: str | None) -> Path:
    root, course_id = _where(exchange, course)
    return root / course_id / "live" / assignment


def board(assignment: str, exchange: str | Path | None = None, course: str | None = None) -> dict[str, t.Any]:
    """The published board of ``assignment`` (the data of its ``leaderboard.json``)."""
    path = _live(assignment, exchange, course) / "board" / "leaderboard.json"
    if not path.is_file():
        raise FileNotFoundError(f"no board of {assignment} has been published yet ({path})")
    return json.loads(path.read_text())


def my_entries(
    assignment: str, exchange: str | Path | None = None, course: str | None = None, student: str | None = None
) -> dict[str, t.Any]:
    """Your own entries of ``assignment`` as the challenge service saw them (only you can read the file)."""
    if student is None:
        from nbgrader.utils import get_username

        student = get_username()
    path = _live(assignment, exchange, course) / "students" / f"{student}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no entry of yours for {assignment} has been received yet ({path})")
    return json.loads(path.read_text())


def _table(header: list[str], rows: list[list[t.Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(value: t.Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def show_board(assignment: str, exchange: str | Path | None = None, course: str | None = None) -> t.Any:
    """Display the board of ``assignment`` in the notebook (each track: rank, name, figure)."""
    from IPython.display import HTML

    data = board(assignment, exchange, course)
    final = data.get("final", False)
    parts = [f"<h4>{html.escape(str(data.get('title', assignment)))}: {'final' if final else 'public'} board</h4>"]
    boards = data.get("boards", {})
    for track in data.get("tracks", list(boards)):
        rows = [
            [
                row.get("rank") or "-",
                row.get("name", ""),
                row.get("detail", ""),
                _figure(row.get("private_cost") if final else row.get("public_cost")),
                row.get("retrain", ""),
            ]
            for row in boards.get(track, [])
        ]
        if rows:
            parts.append(f"<p><b>{html.escape(str(track))}</b></p>")
            parts.append(_table(["rank", "name", "detail", "private" if final else "public", "training check"], rows))
    return HTML("".join(parts))


def show_my_entries(
    assignment: str, exchange: str | Path | None = None, course: str | None = None, student: str | None = None
) -> t.Any:
    """Display your entries of ``assignment``: when each arrived, what became of it, its figures per track."""
    from IPython.display import HTML

    data = my_entries(assignment, exchange, course, student)
    rows = []
    for entry in data.get("entries", []):
        tracks = entry.get("tracks", {})
        figures = "; ".join(
            f"{track}: {_figure(view.get('public'))}"
            + (f" (private {_figure(view.get('private'))})" if "private" in view else "")
            + (" *" if view.get("counts") else "")
            for track, view in tracks.items()
        )
        why = (
            entry.get("reason")
            or entry.get("problem")
            or "; ".join(str(v["problem"]) for v in tracks.values() if v.get("problem"))
        )
        rows.append([entry.get("received", ""), entry.get("status", ""), figures, why])
    limit = data.get("entries_per_day")
    intro = (
        f"<p>You appear on the board as <b>{html.escape(str(data.get('pseudonym')))}</b> (unless you set "
        f"SHOW_MY_NAME = True). The challenge runs from {html.escape(str(data.get('start')))} to "
        f"{html.escape(str(data.get('end')))}; entries per day: {html.escape(str(limit or 'no limit'))}; "
        f"counting: {html.escape(str(data.get('counting')))}. * marks the entries that count.</p>"
    )
    return HTML(intro + _table(["received", "status", data.get("score_name", "figure") + " per track", "why"], rows))
