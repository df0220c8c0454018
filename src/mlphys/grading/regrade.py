"""A failed regrade never destroys the earlier result.

nbgrader removes a submission's autograded folder before it grades the submission again (``--force``,
the formgrader's Autograde button, or a newer submission), and once more when grading fails, so a
regrade that fails used to leave the student with no autograded notebook (nothing to grade by hand, no
feedback) and scores from a run that never finished.

nbgrader runs no hook before that first removal, but it builds the autograde exporter (ours) after it
has found the submissions and before it converts any: there, :class:`EarlierResults` keeps every
autograded folder about to be regraded as hard links (no copying; nbgrader unlinks and rewrites files,
so the links keep the old contents).  Just before a submission is graded it also notes that
submission's autograded scores, comments, late penalty and challenge records in the gradebook.

If grading that submission then fails, the folder and the gradebook entries are put back and the run
stops with :class:`RegradeFailed`.  It is a ``SystemExit``: nbgrader's failure handling (``except
Exception``, which would remove the folder again) lets it pass, ``nbgrader autograde`` exits with its
message and status 1, and the formgrader reports the failure.  Submissions graded earlier in the run keep
their new results; later ones are untouched.  A submission graded for the first time has nothing to
keep: its failure goes to nbgrader as usual (reported, the run goes on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import tempfile
import typing as t
import weakref
from collections.abc import Iterator
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from mlphys.grading import records


class RegradeFailed(SystemExit):
    """Regrading a submission failed; its earlier result was put back and the run stopped."""


@dataclasses.dataclass
class NotebookEntries:
    """What autograding writes to the gradebook for one submitted notebook."""

    scores: dict[str, tuple[float | None, bool]]  # grade cell -> (auto_score, needs_manual_grade)
    comments: dict[str, str | None]  # cell -> auto_comment
    late_penalty: float | None
    records: dict[str, t.Any]


def note_entries(gb: Gradebook, assignment: str, student: str) -> dict[str, NotebookEntries]:
    """The gradebook entries autograding writes, for each notebook of one submission."""
    noted: dict[str, NotebookEntries] = {}
    for notebook in gb.find_assignment(assignment).notebooks:
        try:
            submitted = gb.find_submission_notebook(notebook.name, assignment, student)
        except MissingEntry:
            continue
        noted[notebook.name] = NotebookEntries(
            scores={g.name: (g.auto_score, g.needs_manual_grade) for g in submitted.grades},
            comments={c.name: c.auto_comment for c in submitted.comments},
            late_penalty=submitted.late_submission_penalty,
            records=records.notebook_records(gb, assignment, notebook.name, student),
        )
    return noted


def restore_entries(gb: Gradebook, assignment: str, student: str, noted: dict[str, NotebookEntries]) -> None:
    for name, entries in noted.items():
        submitted = gb.find_submission_notebook(name, assignment, student)
        for grade in submitted.grades:
            if grade.name in entries.scores:
                grade.auto_score, grade.needs_manual_grade = entries.scores[grade.name]
        for comment in submitted.comments:
            if comment.name in entries.comments:
                comment.auto_comment = entries.comments[comment.name]
        submitted.late_submission_penalty = entries.late_penalty
        gb.db.commit()
        records.replace_records(gb, assignment, name, student, entries.records)


def _link_tree(source: Path, target: Path) -> None:
    """``target`` with the same files as ``source``: hard links where possible, copies elsewhere."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)


class EarlierResults:
    """The autograded folders and gradebook entries of the submissions one autograde run may regrade."""

    def __init__(self, converter: t.Any, log: logging.Logger | logging.LoggerAdapter[t.Any]) -> None:
        self.log = log
        coursedir = converter.coursedir
        self.db_url: str = coursedir.db_url
        self.root = coursedir.root
        self.store: Path | None = None
        self.folders: dict[tuple[str, str], tuple[Path, Path]] = {}  # -> (autograded folder, kept copy)
        self.entries: dict[tuple[str, str], dict[str, NotebookEntries]] = {}
        submitted = re.compile(
            coursedir.format_path(coursedir.submitted_directory, "(?P<student>.+)", "(?P<assignment>.+)", escape=True)
            + "$"
        )
        for path in getattr(converter, "assignments", {}):
            match = submitted.match(path)
            if match is None:
                continue
            student, assignment = match["student"], match["assignment"]
            folder = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
            if folder.is_dir() and not folder.is_symlink():
                kept = self._store() / str(len(self.folders))
                _link_tree(folder, kept)
                self.folders[(student, assignment)] = (folder, kept)

    def _store(self) -> Path:
        if self.store is None:
            # Beside the course's own folders, since hard links need the same file system; gone with this object.
            self.store = Path(tempfile.mkdtemp(prefix=".mlphys-earlier-results-", dir=self.root))
            weakref.finalize(self, shutil.rmtree, self.store, True)
        return self.store

    @contextlib.contextmanager
    def guard(self, student: str, assignment: str) -> Iterator[None]:
        """Put the earlier result of this submission back if grading it fails inside the block."""
        key = (student, assignment)
        if key not in self.folders:
            yield
            return
        if key not in self.entries:
            with Gradebook(self.db_url) as gb:
                self.entries[key] = note_entries(gb, assignment, student)
        try:
            yield
        except Exception as exc:
            self.log.error("Grading %s's %s failed", student, assignment, exc_info=True)
            self._restore(student, assignment)
            raise RegradeFailed(
                f"Regrading {student}'s {assignment} failed ({type(exc).__name__}: {exc}). Their earlier "
                "autograded notebook and scores were kept, and this run stopped here; see the log above."
            ) from exc

    def _restore(self, student: str, assignment: str) -> None:
        folder, kept = self.folders.pop((student, assignment))
        with Gradebook(self.db_url) as gb:
            restore_entries(gb, assignment, student, self.entries.pop((student, assignment)))
        if folder.exists():  # however far this run got with it
            shutil.rmtree(folder)
        os.rename(kept, folder)
        self.log.warning("Put the earlier result back: %s", folder)
