"""The similarity report of one assignment: who is compared with whom, what is flagged, and where it is written.

This year's students are compared with each other, and each with every submission of the earlier years given as
references; earlier years are never compared with each other.  The report goes to
``<course>/similarity/<assignment>/`` unless another folder is given, and never into a folder students can reach
(the course's release and feedback folders, the exchange): it names students and shows their code.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import tempfile
import typing as t
from collections.abc import Collection, Callable, Iterable
from pathlib import Path

from copydetect import CodeFingerprint

from mlphys.similarity import compare, extract

# A pair is flagged when one of the two has at least this share of its own code (beyond the template) in the
# other's.  Measured on 02_backprop's real template (its six parts, about 900 characters of filtered code each):
# three honest, independently written solutions shared 0.16 to 0.30 of their code; the reference solution copied
# with names, comments and layout changed 1.00; honest solutions with one part copied from another 0.35 to 0.39,
# with two parts 0.48.  0.5 flags the pairs that share most of their code, with room above the honest ones of a
# large cohort (more pairs, a longer tail); pairs.csv and the page's table list the others, most alike first.
DEFAULT_THRESHOLD = 0.5
# A pair is flagged only if this much matches (characters of filtered code, about three lines; words of prose
# about eight): a student who wrote one short line of their own would otherwise match everyone who wrote it.
MIN_CODE_CHARS = 75
MIN_TEXT_CHARS = 2 * compare.TEXT_NOISE_CHARS

# The exam's hook: given this year's submissions, lines (student, text) of findings of its own, shown in a section
# and a CSV file of their own.
ExtraFlags = Callable[[list[extract.Submission]], Iterable[tuple[str, str]]]


class ReportRefused(ValueError):
    """The report cannot be written as asked (a folder students can reach, no released template, ...)."""


@dataclasses.dataclass
class Entry:
    """A compared submission and the fingerprints of its code and its prose (None where it has none)."""

    submission: extract.Submission
    code: CodeFingerprint | None
    text: CodeFingerprint | None

    @property
    def code_text(self) -> str:
        return self.code.raw_code if self.code is not None else ""

    @property
    def prose(self) -> str:
        return self.text.raw_code if self.text is not None else ""


@dataclasses.dataclass
class Pair:
    """Two compared students (``b`` may be a reference from an earlier year), their overlap, and why flagged."""

    a: Entry
    b: Entry
    code: compare.Overlap
    text: compare.Overlap
    flagged: str  # "" (not flagged), "code", "prose" or "code and prose"


@dataclasses.dataclass
class Report:
    assignment: str
    out_dir: Path
    threshold: float
    students: list[extract.Submission]  # this year's, compared or not
    references: list[extract.Submission]  # earlier years', compared or not
    pairs: list[Pair]  # most alike first
    extra: list[tuple[str, str]] | None  # the hook's lines; None without a hook
    paths: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if p.flagged]

    @property
    def not_compared(self) -> list[extract.Submission]:
        """Submissions with a problem: not compared at all, or compared without a notebook."""
        return [s for s in self.students + self.references if s.problems]


def flag(code: compare.Overlap, text: compare.Overlap, threshold: float) -> str:
    """Why a pair is flagged ("" if it is not)."""
    reasons = []
    if code.highest >= threshold and code.chars >= MIN_CODE_CHARS:
        reasons.append("code")
    if text.highest >= threshold and text.chars >= MIN_TEXT_CHARS:
        reasons.append("prose")
    return " and ".join(reasons)


def course_directory(root: Path) -> t.Any:
    """nbgrader's view of the course in ``root`` (its configuration, read as nbgrader reads it)."""
    from nbgrader.coursedir import CourseDirectory

    from mlphys.grading.parallel import read_config

    config = read_config(root)
    return CourseDirectory(config=config, root=str(root))


def student_reachable(coursedir: t.Any) -> list[Path]:
    """The folders students can reach: the released assignments, the feedback and the exchange."""
    from nbgrader.exchange.default.exchange import Exchange

    root = Path(coursedir.root)
    exchange = Exchange(config=coursedir.config, coursedir=coursedir).root
    return [root / coursedir.release_directory, root / coursedir.feedback_directory, Path(exchange)]


def check_out_dir(out_dir: Path, coursedir: t.Any) -> Path:
    """``out_dir``, resolved (links followed), unless it is in (or is) a folder students can reach."""
    resolved = out_dir.resolve()
    for folder in student_reachable(coursedir):
        folder = folder.resolve()
        if resolved.is_relative_to(folder):
            raise ReportRefused(
                f"refusing to write the similarity report to {out_dir}: students can read {folder}, and the report "
                f"names students and shows their code. Leave out --out (default: <course>/similarity/<assignment>) "
                f"or choose a folder only instructors can read."
            )
    return resolved


def default_out_dir(root: Path, assignment: str) -> Path:
    return root / "similarity" / assignment


def reference_labels(folders: list[Path]) -> list[str]:
    """A short, distinct name for each reference folder: its last path parts, as few as tell them apart."""
    parts = [folder.resolve().parts for folder in folders]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(folder) for folder in folders]  # the same folder twice: its duplicate is dropped by the caller


def _student_folders(folder: Path, assignment: str) -> list[tuple[str, Path]]:
    """``(student, <folder>/<student>/<assignment>)`` of a folder laid out as ``submitted/``."""
    found = []
    for student in sorted(os.listdir(folder)):
        path = folder / student / assignment
        if not student.startswith(".") and path.is_dir() and not path.is_symlink():
            found.append((student, path))
    return found


def _run_hook(extra_flags: ExtraFlags, students: list[extract.Submission]) -> list[tuple[str, str]]:
    """The hook's lines, as strings; a hook that fails is a line of the report, not the end of it."""
    try:
        lines = []
        for line in extra_flags(students):
            student, text = line
            lines.append((str(student), str(text)))
        return lines
    except Exception as exc:
        return [("", f"the extra check failed: {type(exc).__name__}: {exc}")]


def build_report(
    root: Path,
    assignment: str,
    references: Iterable[Path] = (),
    out_dir: Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    extra_flags: ExtraFlags | None = None,
    cells: Collection[str] | None = None,
) -> Report:
    """Compare the submissions of ``assignment`` in the course ``root`` and write ``pairs.csv``, ``index.html``
    (and ``not_compared.csv``, ``extra_flags.csv`` with a hook) to ``out_dir``.

    ``references``: folders laid out like ``submitted/`` (``<student>/<assignment>/*.ipynb``) of earlier years.
    ``extra_flags``: a callable given this year's submissions (:class:`~mlphys.similarity.extract.Submission`:
    student id, folder, solution cells, problems) that returns lines ``(student, text)`` for a section of their own;
    an exam wires its own checks in here (e.g. answers that fit a neighbour's variant).
    ``cells``: the grade ids of the solution cells compared (default: all); an exam leaves out the cells of
    numeric answers, alike in form for everyone, which ``extra_flags`` judges against the variants instead.
    """
    from mlphys.grading.parallel import find_students
    from mlphys.similarity import page

    if not 0 < threshold <= 1:
        raise ReportRefused(f"the threshold is a share of a student's code, above 0 and at most 1 (not {threshold})")
    root = root.resolve()
    coursedir = course_directory(root)
    out_dir = check_out_dir(out_dir or default_out_dir(root, assignment), coursedir)
    release = root / coursedir.release_directory / assignment
    notebooks = sorted(p.name for p in release.glob("*.ipynb")) if release.is_dir() else []
    if not notebooks:
        raise ReportRefused(
            f"no released notebooks in {release}: run `nbgrader generate_assignment {assignment}` first (the "
            f"released template is what given code is told apart by)"
        )
    try:
        template, template_code, template_markdown = extract.template_cells(release, notebooks)
    except ValueError as exc:
        raise ReportRefused(f"the released template of {assignment} cannot be read: {exc}") from None

    students = [
        extract.read_submission(Path(coursedir.format_path(coursedir.submitted_directory, s, assignment)), notebooks, s)
        for s in find_students(root, assignment)
    ]
    reference_folders = list(dict.fromkeys(Path(r).resolve() for r in references))
    for folder in reference_folders:
        if not folder.is_dir():
            raise ReportRefused(f"the reference folder {folder} does not exist")
    earlier = [
        extract.read_submission(path, notebooks, student, reference=folder, reference_label=label)
        for folder, label in zip(reference_folders, reference_labels(reference_folders), strict=True)
        for student, path in _student_folders(folder, assignment)
    ]

    with tempfile.TemporaryDirectory(prefix="mlphys-similarity-") as scratch:
        code_prints = compare.Fingerprinter(
            Path(scratch), compare.CODE, [extract.code_document(template), *template_code]
        )
        text_prints = compare.Fingerprinter(
            Path(scratch),
            compare.TEXT,
            [extract.text_document(template), *(extract.normalise_text(s) for s in template_markdown)],
        )

        def entry(submission: extract.Submission) -> Entry:
            compared = [c for c in submission.cells if cells is None or c.grade_id in cells]
            return Entry(
                submission,
                code_prints(extract.code_document(compared)),
                text_prints(extract.text_document(compared)),
            )

        ours = [entry(s) for s in students if s.compared]
        theirs = [entry(s) for s in earlier if s.compared]
    folders = {id(e): e.submission.folder.resolve() for e in ours + theirs}
    pairs = []
    for i, a in enumerate(ours):
        for b in ours[i + 1 :] + theirs:
            if folders[id(a)] == folders[id(b)]:
                continue  # this year's folder given as a reference too: nobody is compared with themselves
            code, text = compare.compare(a.code, b.code), compare.compare(a.text, b.text)
            pairs.append(Pair(a, b, code, text, flag(code, text, threshold)))
    pairs.sort(key=lambda p: (-p.code.highest, -p.text.highest, p.a.submission.student, p.b.submission.student))

    report = Report(
        assignment,
        out_dir,
        threshold,
        students,
        earlier,
        pairs,
        _run_hook(extra_flags, students) if extra_flags is not None else None,
    )
    write(report)
    report.paths["index.html"].write_text(page.render(report), encoding="utf-8")
    return report


def _makedirs_private(path: Path) -> None:
    # Folders created for the report are the instructor's own (0700): the report names students.
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700)


def write(report: Report) -> None:
    """The CSV files of the report (``pairs.csv``; ``not_compared.csv``; ``extra_flags.csv`` with a hook)."""
    _makedirs_private(report.out_dir)
    report.paths = {name: report.out_dir / name for name in ("index.html", "pairs.csv", "not_compared.csv")}
    with open(report.paths["pairs.csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "student_a",
                "student_b",
                "b_is_reference",
                "similarity_a",
                "similarity_b",
                "tokens_overlapping",
                "prose_similarity_a",
                "prose_similarity_b",
                "prose_chars_overlapping",
                "flagged",
                "flagged_for",
            ]
        )
        for pair in report.pairs:
            writer.writerow(
                [
                    pair.a.submission.student,
                    pair.b.submission.student,
                    "yes" if pair.b.submission.reference is not None else "no",
                    f"{pair.code.similarity[0]:.3f}",
                    f"{pair.code.similarity[1]:.3f}",
                    pair.code.chars,
                    f"{pair.text.similarity[0]:.3f}",
                    f"{pair.text.similarity[1]:.3f}",
                    pair.text.chars,
                    "yes" if pair.flagged else "no",
                    pair.flagged,
                ]
            )
    with open(report.paths["not_compared.csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "compared", "problem"])
        for submission in report.not_compared:
            for problem in submission.problems:
                writer.writerow([submission.student, "partly" if submission.compared else "no", problem])
    if report.extra is not None:
        report.paths["extra_flags.csv"] = report.out_dir / "extra_flags.csv"
        with open(report.paths["extra_flags.csv"], "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["student", "finding"])
            writer.writerows(report.extra)


def summary(report: Report) -> str:
    """A few lines for the terminal: pairs flagged, students compared, where the report is."""
    compared = sum(s.compared for s in report.students)
    references = sum(s.compared for s in report.references)
    lines = [
        f"{report.assignment}: {len(report.flagged)} of {len(report.pairs)} pairs flagged "
        f"(threshold {report.threshold:g}); {compared} of {len(report.students)} students compared"
        + (f", also against {references} of earlier years" if report.references else ""),
    ]
    for pair in report.flagged[:10]:
        a, b = pair.code.similarity
        lines.append(
            f"  {pair.a.submission.student} ~ {pair.b.submission.student}: {a:.0%} / {b:.0%} of the code "
            f"({pair.flagged})"
        )
    if len(report.flagged) > 10:
        lines.append(f"  ... and {len(report.flagged) - 10} more")
    not_compared = [s.student for s in report.not_compared if not s.compared]
    if not_compared:
        lines.append(f"  not compared: {', '.join(not_compared)} (why: not_compared.csv)")
    if report.extra:
        lines.append(f"  {len(report.extra)} lines from the extra check")
    lines.append(f"report (instructors only): {report.paths['index.html']}")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_THRESHOLD",
    "Entry",
    "ExtraFlags",
    "Pair",
    "Report",
    "ReportRefused",
    "build_report",
    "check_out_dir",
    "default_out_dir",
    "summary",
]
