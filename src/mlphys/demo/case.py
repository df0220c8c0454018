"""What a simulated submission is, and the notebooks it is built from."""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Collection
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from mlphys.demo import DEMO_SECRET
from mlphys.grading.hidden import split_test_source


def course_secret() -> str:
    """The secret the grading run will use (the environment's, else the demo's): cases whose expected points
    depend on per-student numbers compute them with it."""
    return os.environ.get("MLPHYS_CHALLENGE_SECRET") or DEMO_SECRET


@dataclasses.dataclass(frozen=True)
class Materials:
    """The instructor's notebook and its release, from which submissions are made."""

    course_root: Path
    assignment: str
    notebook: str  # file stem, e.g. "xor_nets"

    def source(self) -> NotebookNode:
        return nbformat.read(self.course_root / "source" / self.assignment / f"{self.notebook}.ipynb", 4)

    def blank(self) -> NotebookNode:
        """The release notebook, as a student receives it."""
        return nbformat.read(self.course_root / "release" / self.assignment / f"{self.notebook}.ipynb", 4)

    def reference(self) -> NotebookNode:
        """A student notebook holding the reference solution (no hidden tests, as a student has it)."""
        nb = self.source()
        for cell in nb.cells:
            if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
                cell.source = split_test_source(cell.source)[0]
        return nb

    def with_solutions(self, replacements: dict[str, str], base: NotebookNode | None = None) -> NotebookNode:
        """The reference notebook with some solution cells (by grade_id) replaced."""
        nb = copy.deepcopy(base) if base is not None else self.reference()
        found = set()
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in replacements:
                cell.source = replacements[grade_id]
                found.add(grade_id)
        missing = set(replacements) - found
        if missing:
            raise KeyError(f"no cells with grade_id {sorted(missing)}")
        return nb

    def test_points(self) -> dict[str, float]:
        """Points of each autograded test cell of the instructor's notebook, by grade_id."""
        points: dict[str, float] = {}
        for cell in self.source().cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                points[meta["grade_id"]] = float(meta["points"])
        return points


def reference_cell(materials: Materials, grade_id: str) -> str:
    """The instructor's solution of one cell (by grade_id), without the solution markers."""
    for cell in materials.source().cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            markers = ("### BEGIN SOLUTION", "### END SOLUTION")
            return "\n".join(line for line in cell.source.splitlines() if line.strip() not in markers)
    raise KeyError(grade_id)


Writer = Callable[[Path, Materials], None]


@dataclasses.dataclass(frozen=True)
class Case:
    """One simulated student.

    ``write`` fills the (existing, empty) submission directory ``submitted/<student>/<assignment>/``.
    ``expected_points`` is the exact autograded total the case must get, or None where the submission
    cannot be graded at all (then it must get no points and must not disturb anyone else).  A challenge
    entry that breaks the training budget scores like an honest one; ``flagged_by_retraining`` says the
    leaderboard's retraining check must flag it.  ``quick`` cases make the quick demo (``mlphys demo``): the
    reference, the blank release, a few typical mistakes and a few attacks of different kinds per assignment;
    ``mlphys demo --full`` grades every case.
    """

    student: str
    assignment: str
    kind: str  # "reference" | "blank" | "mistake" | "attack"
    description: str
    write: Writer
    expected_points: float | None
    flagged_by_retraining: bool = False  # challenges: the budget check must flag this entry
    quick: bool = False  # one of the quick demo's cases
    # Timed assignments (an exam): the case is submitted through the course exchange, after the common end
    # (``late``), claiming in its timestamp.txt, folder name and file times to be on time (``forges_time``), with
    # an extension in exams.toml (``extra_minutes``).  Other cases are handed in on time.
    late: bool = False
    forges_time: bool = False
    extra_minutes: float = 0.0

    @property
    def timed(self) -> bool:
        return self.late or self.forges_time or self.extra_minutes > 0


def write_notebook(nb: NotebookNode, directory: Path, name: str) -> None:
    nbformat.write(nb, directory / f"{name}.ipynb")


@dataclasses.dataclass(frozen=True)
class Mistake:
    """A typical mistake: some solution cells replaced, and the test cells that must then fail."""

    student: str
    description: str
    replacements: dict[str, str]  # solution cell grade_id -> the mistaken source
    breaks: tuple[str, ...]  # test cell grade_ids that lose their points


def assignment_cases(materials: Materials, mistakes: list[Mistake], quick: Collection[str] = ()) -> list[Case]:
    """The reference, the blank release and the typical mistakes of one assignment; the reference, the blank
    release and the mistakes of the students in ``quick`` are quick cases.

    Expected points come from the instructor's notebook: the reference gets every autograded point (a
    hand-graded answer counts 0 until an instructor grades it), a mistake loses the points of the test
    cells it breaks.
    """
    unknown = set(quick) - {m.student for m in mistakes}
    if unknown:
        raise KeyError(f"no mistakes {sorted(unknown)}")
    points = materials.test_points()
    total = sum(points.values())

    def write_reference(directory: Path, m: Materials) -> None:
        write_notebook(m.reference(), directory, m.notebook)

    def write_blank(directory: Path, m: Materials) -> None:
        write_notebook(m.blank(), directory, m.notebook)

    def writer(replacements: dict[str, str]) -> Writer:
        return lambda directory, m: write_notebook(m.with_solutions(replacements), directory, m.notebook)

    a = materials.assignment
    cases = [
        Case("ref_solution", a, "reference", "the instructor's reference solution", write_reference, total, quick=True),
        Case("blank_release", a, "blank", "the release notebook, submitted unchanged", write_blank, 0.0, quick=True),
    ]
    for mistake in mistakes:
        expected = total - sum(points[grade_id] for grade_id in mistake.breaks)
        write = writer(mistake.replacements)
        cases.append(
            Case(mistake.student, a, "mistake", mistake.description, write, expected, quick=mistake.student in quick)
        )
    return cases
