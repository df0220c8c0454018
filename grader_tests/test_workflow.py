"""The instructor's everyday workflow with the real ``nbgrader`` commands.

- Regrading in place: ``nbgrader autograde --force`` on a submission graded before replaces its
  grade, its autograded notebook (hence its feedback) and its challenge records together.
- The release -> fetch -> submit -> collect -> autograde -> feedback cycle through the course's
  exchange, the student's side run as another user would (own home, own working directory).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import sqlalchemy.exc
from nbgrader.api import Gradebook

from mlphys.assignments.autoencoder_challenge import challenge
from mlphys.cli import nbgrader
from mlphys.course import autoencoder
from mlphys.demo.case import Materials
from mlphys.grading import records
from test_formgrader import make_small_course

ASSIGNMENT = "01_xor_nets"
NOTEBOOK = "xor_nets"
COURSE = "ml4physics"  # c.CourseDirectory.course_id of the committed configuration


@pytest.fixture
def gradebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gradebook]:
    # nbgrader runs `alembic` of its environment by name when it creates a gradebook.
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        yield gb



def stored(gradebook: Gradebook, assignment: str, key: str) -> dict:
    """The records of one kind, without the time the grader stored each."""
    return {where: data for where, (data, _) in records.load_records(gradebook, assignment, key).items()}

def test_replacing_records_of_a_graded_notebook_keeps_only_the_new_ones(gradebook: Gradebook) -> None:
    records.replace_records(gradebook, "a", "nb", "alice", {"entry": {"cost": 0.5}, "extra": 1})
    records.replace_records(gradebook, "a", "nb", "bob", {"entry": {"cost": 0.7}})
    records.replace_records(gradebook, "a", "nb", "alice", {"entry": {"cost": 0.25}})  # the regrade
    assert stored(gradebook, "a", "entry") == {
        ("alice", "nb"): {"cost": 0.25},
        ("bob", "nb"): {"cost": 0.7},
    }
    assert stored(gradebook, "a", "extra") == {}


def test_a_failed_replacement_leaves_the_old_records(gradebook: Gradebook) -> None:
    records.replace_records(gradebook, "a", "nb", "alice", {"entry": {"cost": 0.5}})
    with pytest.raises((TypeError, ValueError, sqlalchemy.exc.SQLAlchemyError)):
        records.replace_records(gradebook, "a", "nb", "alice", {"entry": {"cost": 0.25}, "bad": object()})
    assert stored(gradebook, "a", "entry") == {("alice", "nb"): {"cost": 0.5}}


# ---- release -> fetch -> submit -> collect -> autograde -> feedback, through the course's exchange ----------


def student_nbgrader(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``nbgrader`` as a student runs it: own home and Jupyter configuration, own working directory."""
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"),
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), *args],
        cwd=home / "work",
        env=env,
        capture_output=True,
        text=True,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def test_release_fetch_submit_collect_autograde_and_feedback_through_the_exchange(tmp_path: Path) -> None:
    course = make_small_course(tmp_path / "course", ASSIGNMENT)
    home = tmp_path / "student"
    (home / "work").mkdir(parents=True)
    (home / ".jupyter").mkdir()
    # What a student's Jupyter on this machine is configured with (docs/instructors/course-cycle.md).
    (home / ".jupyter" / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.course_id = {COURSE!r}\n"
        f"c.Exchange.root = {str(course / 'exchange')!r}\n"
        "c.Exchange.path_includes_course = True\n"
    )

    ok(nbgrader(course, "release_assignment", ASSIGNMENT, check=False))
    assert ASSIGNMENT in ok(student_nbgrader(home, "list"))
    ok(student_nbgrader(home, "fetch_assignment", ASSIGNMENT))
    fetched = home / "work" / COURSE / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    materials = Materials(course, ASSIGNMENT, NOTEBOOK)
    solutions = {
        cell.metadata.nbgrader.grade_id: cell.source
        for cell in materials.reference().cells
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    nbformat.write(materials.with_solutions(solutions, base=nbformat.read(fetched, 4)), fetched)
    ok(student_nbgrader(home, "submit", ASSIGNMENT))

    ok(nbgrader(course, "collect", ASSIGNMENT, check=False))
    student = getpass.getuser()
    assert (course / "submitted" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb").is_file()
    ok(nbgrader(course, "autograde", ASSIGNMENT, check=False))
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert gb.find_submission(ASSIGNMENT, student).score == sum(materials.test_points().values()) > 0
    ok(nbgrader(course, "generate_feedback", ASSIGNMENT, check=False))
    ok(nbgrader(course, "release_feedback", ASSIGNMENT, check=False))

    ok(student_nbgrader(home, "fetch_feedback", ASSIGNMENT))
    pages = list((home / "work" / COURSE / ASSIGNMENT / "feedback").glob(f"*/{NOTEBOOK}.html"))
    assert len(pages) == 1
    assert "Hidden tests passed" in pages[0].read_text()


# ---- regrading a challenge entry in place -----------------------------------------------------------------

CHALLENGE = "03_autoencoder_challenge"
CHALLENGE_NOTEBOOK = "autoencoder_challenge"
TRACK = "MEDIUM/NORMAL"  # the reference notebook's entry


def write_entry(materials: Materials, folder: Path, seed: int) -> Path:
    """Freshly initialised weights of the reference architecture: a valid entry, cheap to make."""
    import torch

    architecture = next(
        cell.source
        for cell in materials.reference().cells
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == challenge.ARCHITECTURE_CELL
    )
    namespace: dict[str, object] = {}
    exec(challenge.PREAMBLE + architecture, namespace)
    code_size, _ = autoencoder.parse_track(TRACK)
    torch.manual_seed(seed)
    encoder, decoder = namespace["Encoder"](code_size), namespace["Decoder"](code_size)  # type: ignore[operator]
    return autoencoder.save_entry(encoder, decoder, TRACK, folder)


def graded_entry(course: Path, student: str) -> tuple[float, dict, Path]:
    """The gradebook's score, the challenge record and the autograded notebook of a student."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        score = float(gb.find_submission(CHALLENGE, student).score)
        record = records.load_records(gb, CHALLENGE, challenge.CHALLENGE.key)[(student, CHALLENGE_NOTEBOOK)][0]
    return score, record, course / "autograded" / student / CHALLENGE / f"{CHALLENGE_NOTEBOOK}.ipynb"


def passed_points(autograded: Path) -> float:
    """The points the autograded notebook (hence the feedback) says were earned."""
    return sum(
        float(cell.metadata.nbgrader.points)
        for cell in nbformat.read(autograded, 4).cells
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade")
        and any("Hidden tests passed" in out.get("text", "") for out in cell.get("outputs", []))
    )


def test_regrading_a_challenge_entry_in_place_replaces_grade_feedback_and_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    course = make_small_course(tmp_path / "course", CHALLENGE)
    materials = Materials(course, CHALLENGE, CHALLENGE_NOTEBOOK)
    folder = course / "submitted" / "alice" / CHALLENGE
    folder.mkdir(parents=True)
    nbformat.write(materials.reference(), folder / f"{CHALLENGE_NOTEBOOK}.ipynb")
    write_entry(materials, folder, seed=0)
    ok(nbgrader(course, "autograde", CHALLENGE, check=False))
    _, first, _ = graded_entry(course, "alice")

    weights = write_entry(materials, folder, seed=1)  # a late weights file, then the instructor regrades
    ok(nbgrader(course, "autograde", CHALLENGE, "--force", check=False))
    score, record, autograded = graded_entry(course, "alice")

    (old_entry,), (entry,) = first["entries"], record["entries"]
    assert entry["stage"] == "scored", entry["problem"]
    assert entry["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest() != old_entry["weights_sha256"]
    assert entry["public_cost"] != old_entry["public_cost"]
    assert (autograded.parent / weights.name).read_bytes() == weights.read_bytes()
    assert score == passed_points(autograded)
