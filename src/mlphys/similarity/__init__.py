"""Similarity report: pairs of students whose solutions are suspiciously alike (``mlphys similarity``).

For one assignment (or exam) of an nbgrader course, each student's solution cells are read from ``submitted/``
(:mod:`.extract`), compared with every other student's, and with earlier years' submissions given as references,
by copydetect's winnowing over tokens with the released template removed (:mod:`.compare`); the pairs go to
``pairs.csv`` and a static page with the flagged pairs side by side (:mod:`.report`, :mod:`.page`), in
``<course>/similarity/<assignment>/``, a folder for instructors only.

``build_report(..., extra_flags=f)`` is the extension point for assignments with per-student variants (an exam):
``f(students)`` gets this year's :class:`~.extract.Submission` objects and returns ``(student, text)`` lines,
shown in a section of the page and in ``extra_flags.csv`` of their own.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from mlphys.similarity.extract import SolutionCell, Submission
from mlphys.similarity.report import (
    DEFAULT_THRESHOLD,
    ExtraFlags,
    Report,
    ReportRefused,
    build_report,
    default_out_dir,
    summary,
)


def main(
    root: Path,
    assignment: str,
    references: list[Path],
    out_dir: Path | None,
    threshold: float,
    extra_flags: ExtraFlags | None = None,
    cells: Collection[str] | None = None,
) -> int:
    """``mlphys similarity``: build the report, print its summary; a report that cannot be written as asked ends
    the command with the reason."""
    try:
        report = build_report(root, assignment, references, out_dir, threshold, extra_flags, cells)
    except ReportRefused as exc:
        raise SystemExit(f"mlphys similarity: {exc}") from None
    print(summary(report))
    return 0


__all__ = [
    "DEFAULT_THRESHOLD",
    "ExtraFlags",
    "Report",
    "ReportRefused",
    "SolutionCell",
    "Submission",
    "build_report",
    "default_out_dir",
    "main",
    "summary",
]
