"""``mlphys challenge serve`` and ``mlphys challenge status``: logging set up, the service started, the store read."""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

from mlphys.live import service, store


def _logging(root: Path) -> None:
    """Everything the service does, to the terminal and to ``logs/live/service.log`` in the course."""
    folder = root / "logs" / "live"
    folder.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    logger = logging.getLogger("mlphys.live")
    logger.setLevel(logging.INFO)
    if any(getattr(h, "baseFilename", None) == str((folder / "service.log").resolve()) for h in logger.handlers):
        return  # set up already (a second command in the same process)
    for handler in (logging.StreamHandler(), logging.FileHandler(folder / "service.log")):
        handler.setFormatter(formatter)
        logger.addHandler(handler)


def serve(
    root: Path,
    only: t.Sequence[str],
    poll: float,
    once: bool,
    workers: int,
    warm_kernels: int,
    settle: float,
    scheduler: str | None = None,
) -> int:
    root = root.resolve()
    _logging(root)
    service.serve(
        root, only, poll=poll, once=once, workers=workers, warm_kernels=warm_kernels, settle=settle, scheduler=scheduler
    )
    return 0


def status(root: Path, assignment: str) -> int:
    """Print every entry of ``assignment``: who, when received, its state and figures (the instructor's view)."""
    course = service.LiveCourse.load(root.resolve(), [assignment])
    with store.EntryStore(course.db_url) as entries:
        rows = entries.entries(assignment)
        final = store.is_final(entries, assignment)
    print(f"{assignment}: {len(rows)} entries{' (final boards published)' if final else ''}")
    for row in rows:
        result = store.decode_result(row)
        figures = ", ".join(
            f"{e.get('track')} {e.get('public_cost'):.4g}/{e.get('private_cost'):.4g}"
            for e in result.get("entries", [])
            if isinstance(e.get("public_cost"), float) and isinstance(e.get("private_cost"), float)
        )
        took = f"{row.seconds:.2f} s" if row.seconds is not None else ""
        print(
            f"  {row.received_at:%Y-%m-%d %H:%M:%S} {row.student:24} {row.state:8} {took:>8}  {figures or row.reason}"
        )
    return 0
