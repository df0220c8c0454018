"""Write the boards as ``leaderboard.csv``, ``leaderboard.json`` and a static ``index.html``.

The exports are pure functions of the entries: no clock, sorted keys, fixed figure rendering, so rebuilding
from the same entries gives byte-identical files (a web host or git sees no spurious change). Student ids
never appear, and while the board is public no private cost does either: `rank` already leaves it out.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy

from mlphys.leaderboard import figures, page
from mlphys.leaderboard.entry import BoardSpec, Entry
from mlphys.leaderboard.ranking import FLAGGED, INVALID, RANKED, Row, rank, tie_break

TOP = 3  # entries per board whose pictures are shown
MAX_IMAGES = 10  # originals shown beside them

RETRAIN_TEXT = {
    "unchecked": "not checked",
    "reproduced": "reproduced ✓",
    "flagged": "flagged ⚠",
    "timed out": "not checked (timed out)",
}


def _number(value: float | None) -> float | None:
    """A cost for JSON: non-finite values become null (JSON has no NaN)."""
    return value if value is not None and math.isfinite(value) else None


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(value)  # repr: the exact float, as ranked


def _shown(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.6g}" if math.isfinite(value) else "invalid"


def _iso(when: datetime.datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _submitted(when: datetime.datetime | None) -> str:
    if when is None:
        return "—"
    if when.tzinfo is not None:
        when = when.astimezone(datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _csv_text(text: str) -> str:
    """Keep a chosen name from being read as a spreadsheet formula when the CSV is opened in one."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _fields(final: bool) -> list[str]:
    costs = ["public_cost", "private_cost"] if final else ["public_cost"]
    return ["track", "rank", "status", "name", "detail", *costs, "retrain", "retrained_cost", "submitted_at"]


def _record(row: Row, final: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "track": row.track,
        "rank": row.rank,
        "status": row.status,
        "name": row.name,
        "detail": row.detail,
        "public_cost": row.public_cost,
        "retrain": row.retrain,
        "retrained_cost": row.retrained_cost,
        "submitted_at": _iso(row.submitted_at),
    }
    if final:
        record["private_cost"] = row.private_cost
    return record


def to_csv(boards: Mapping[str, Sequence[Row]], *, final: bool) -> str:
    """One line per entry, boards in track order, rows in rank order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_fields(final), lineterminator="\n")
    writer.writeheader()
    for rows in boards.values():
        for row in rows:
            record = _record(row, final)
            for key in ("public_cost", "private_cost", "retrained_cost"):
                if key in record:
                    record[key] = _csv_number(record[key])
            record["rank"] = "" if row.rank is None else row.rank
            record["submitted_at"] = record["submitted_at"] or ""
            record["name"] = _csv_text(row.name)
            writer.writerow(record)
    return buffer.getvalue()


def to_json(
    boards: Mapping[str, Sequence[Row]],
    *,
    final: bool,
    title: str,
    entries: int,
    shown: int,
    spec: BoardSpec | None = None,
) -> str:
    """The boards as plain, stable JSON (sorted keys, no NaN).  The ``*_cost`` fields hold the number the boards
    rank by (``higher_is_better`` says which way: a cost, or a score such as a return)."""
    spec = spec or BoardSpec(title=title, tracks=tuple(boards))
    document = {
        "title": title,
        "final": final,
        "ranked_by": "private_cost" if final else "public_cost",
        "higher_is_better": spec.higher_is_better,
        "generated_from": {"entries": entries, "pictures_per_entry": shown},
        "tie_break": tie_break(higher_is_better=spec.higher_is_better, score=spec.score_name),
        "tracks": list(boards),  # the boards' display order (keys below are sorted)
        "boards": {
            track: [
                {k: (_number(v) if k.endswith("cost") else v) for k, v in _record(row, final).items()} for row in rows
            ]
            for track, rows in boards.items()
        },
    }
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _html_row(row: Row, final: bool) -> dict[str, Any]:
    costs = [row.public_cost, row.private_cost] if final else [row.public_cost]
    return {
        "rank": "" if row.rank is None else row.rank,
        "rank_text": row.rank if row.rank is not None else ("flagged" if row.status == FLAGGED else "—"),
        "status": row.status,
        "css": {RANKED: "ranked", FLAGGED: "flagged", INVALID: "invalid"}[row.status],
        "name": row.name,
        "detail": row.detail,
        "costs": [_shown(c) for c in costs],
        "retrain": row.retrain,
        "retrain_text": RETRAIN_TEXT[row.retrain],
        "retrained": _shown(row.retrained_cost),
        "submitted": _submitted(row.submitted_at),
    }


def to_html(
    boards: Mapping[str, Sequence[Row]], originals: numpy.ndarray | None, *, final: bool, spec: BoardSpec
) -> str:
    """The self-contained page: the cost distribution, one table per board and the top entries' pictures."""
    sections = []
    for track, rows in boards.items():
        top = [r for r in rows if r.status == RANKED and r.picture is not None][:TOP]
        picture = None
        if top and originals is not None and len(originals):
            trimmed = [dataclasses.replace(r, picture=r.picture[:MAX_IMAGES]) for r in top]
            picture = page.data_uri(figures.pictures(originals[:MAX_IMAGES], trimmed, cmap=spec.picture_cmap))
        sections.append(
            {
                "track": track,
                "id": "board-" + "".join(ch if ch.isalnum() else "-" for ch in track.lower()),
                "description": spec.track_notes.get(track, ""),
                "rows": [_html_row(r, final) for r in rows],
                "pictures": picture,
            }
        )
    split = "private" if final else "public"
    return page.render(
        title=spec.title,
        metric=spec.metric,
        detail_label=spec.detail_label,
        picture_caption=spec.picture_caption,
        final=final,
        better="higher" if spec.higher_is_better else "lower",
        score_name=spec.score_name,
        tie_break=tie_break(higher_is_better=spec.higher_is_better, score=spec.score_name),
        distribution=page.data_uri(
            figures.cost_distribution(boards, split=split, score=spec.score_name, log=not spec.higher_is_better)
        ),
        cost_columns=[f"{split} {spec.score_name}" for split in (("public", "private") if final else ("public",))],
        boards=sections,
    )


def _check_images(entries: Sequence[Entry], originals: numpy.ndarray | None) -> numpy.ndarray | None:
    if originals is None:
        return None
    originals = numpy.asarray(originals, dtype=float)
    if originals.ndim != 3:
        raise ValueError(f"originals must be an (m, height, width) array, got shape {originals.shape}")
    for entry in entries:
        if entry.picture is not None and numpy.shape(entry.picture) != originals.shape:
            raise ValueError(
                f"the picture of {entry.student!r} ({entry.track}) has shape {numpy.shape(entry.picture)}"
                f", the originals {originals.shape}"
            )
    return originals


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically, so a web server never serves a half-written board."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_boards(
    entries: Sequence[Entry],
    out_dir: Path,
    *,
    spec: BoardSpec,
    originals: numpy.ndarray | None,
    final: bool,
    salt: str,
) -> dict[str, Path]:
    """Rank ``entries`` and write ``leaderboard.csv``, ``leaderboard.json`` and ``index.html`` into ``out_dir``.

    ``final=False`` ranks by the public cost and writes no private cost anywhere; ``final=True`` ranks by the
    private cost and shows both. ``salt`` is the course secret behind the pseudonyms; ``originals`` are the first
    m public test examples, of which every entry's ``picture`` (if any) shows its version. Returns the paths
    written.
    """
    originals = _check_images(entries, originals)
    boards = rank(entries, spec.tracks, final=final, salt=salt, higher_is_better=spec.higher_is_better)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "leaderboard.csv", "json": out_dir / "leaderboard.json", "html": out_dir / "index.html"}
    shown = 0 if originals is None else min(len(originals), MAX_IMAGES)
    _write(paths["csv"], to_csv(boards, final=final))
    _write(paths["json"], to_json(boards, final=final, title=spec.title, entries=len(entries), shown=shown, spec=spec))
    _write(paths["html"], to_html(boards, originals, final=final, spec=spec))
    return paths
