"""Scoring one live entry: the challenge part of autograde, on a submission folder of the exchange.

The same engine as ``nbgrader autograde``: the submission's regular files are staged (as for the sandbox), the
weights are loaded and checked by :func:`mlphys.grading.challenge.score_challenge`, and the challenge scores them in
fresh sandboxed kernels (warm ones from a :class:`~mlphys.grading.warm_kernels.WarmKernels` pool where the service
keeps one).  What autograde reads from the student's running notebook (``TRACKS``, ``SHOW_MY_NAME``, and here
``COUNT_THIS_ENTRY``) comes from the cells that set them, run on their own in a fresh sandboxed kernel and read back
as validated plain data; the rest of the notebook is not run, and the gradebook is not touched.  So the public and
private figures are those autograde records for the same files.

Whatever goes wrong with the entry becomes a ``problem`` in the result, in words the student can act on (those of
the feedback); the service never stops for one entry.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import shutil
import tempfile
import time
import typing as t
from pathlib import Path

from mlphys.assignments import Assignment
from mlphys.grading.challenge import EntryProblem, TimeUp, score_challenge
from mlphys.grading.execute import SandboxedExecute, sandbox_problem, stage_files
from mlphys.grading.handoff import solution_sources
from mlphys.grading.intake import read_submitted_notebook
from mlphys.grading.isolated import Isolation
from mlphys.grading.submission import MISSING, Submission
from mlphys.live.rules import SELECT_NAME

ENTRY_NAMES = ("TRACKS", "SHOW_MY_NAME", SELECT_NAME)
ENTRY_CELL = "__entry__"  # where the cells that set ENTRY_NAMES go among the entry's cells
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Settings:
    """What scoring takes from the course's grading settings (``c.SandboxedExecute.*``)."""

    executor: SandboxedExecute
    secret: str
    log_dir: Path  # the kernels' own output (banners, warnings, crashes) goes to kernels.log there

    def isolation(self) -> Isolation:
        """The limits of every kernel the service starts (one set for all: its warm kernels start before it knows
        whose entry they will score)."""
        problem = sandbox_problem()
        if problem and not self.executor.allow_unsandboxed:
            raise RuntimeError(f"No sandbox for student code ({problem}); not scoring.")
        return self.executor.isolation(use_bwrap=problem is None, kernel_log=(self.log_dir / "kernels.log").resolve())


def entry_cells(nb: t.Any) -> str:
    """The code cells that assign one of :data:`ENTRY_NAMES` at their top level, joined in order.  A cell that
    does not parse is left out (autograde would report it; here its names keep their defaults)."""
    chosen = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError):
            continue
        assigned = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        if assigned & set(ENTRY_NAMES):
            chosen.append(cell.source)
    return "\n\n".join(chosen)


def read_entry_values(submission: Submission, plugin: Assignment) -> dict[str, t.Any]:
    """The validated values of :data:`ENTRY_NAMES` as the entry's own cells set them (absent names left out)."""
    challenge = plugin.challenge
    assert challenge is not None
    if not (submission.cell_source(ENTRY_CELL) or "").strip():
        return {}
    kernel = submission.scoring(challenge).fresh_kernel([ENTRY_CELL], preamble="")
    values: dict[str, t.Any] = {}
    try:
        with kernel.session(what="cell that sets TRACKS") as session:
            for name in ENTRY_NAMES:
                found = session.value(name, MISSING)
                if found is not MISSING:
                    values[name] = found
    except EntryProblem as exc:
        # The engine names the cell by its id; this one is the service's, made of the cells that set TRACKS.
        words = str(exc).replace(f"Your `{ENTRY_CELL}` cell", "Your cell that sets TRACKS")
        raise EntryProblem(f"{words} (The service runs that cell on its own to read your entry.)") from None
    return values


def score_entry(plugin: Assignment, folder: Path, student: str, settings: Settings, kernels: t.Any = None) -> dict:
    """Score the challenge entries of one submission folder; the result the store keeps (plain JSON data)."""
    challenge = plugin.challenge
    assert challenge is not None
    executor = settings.executor
    started = time.monotonic()
    stage = Path(tempfile.mkdtemp(prefix="mlphys-live-"))
    try:
        try:
            nb = read_submitted_notebook(folder / f"{plugin.notebook}.ipynb", executor.max_submission_mb * 2**20)
        except ValueError as exc:
            return {"problem": f"Your submission has no readable {plugin.notebook}.ipynb: {exc}", "entries": []}
        for skipped in stage_files(folder, stage, executor.max_submission_mb * 2**20, 2000):
            log.info("%s: not staged: %s", student, skipped)
        cells = {**solution_sources(nb), ENTRY_CELL: entry_cells(nb)}
        submission = Submission(
            files=stage,
            cells=cells,
            isolation=settings.isolation(),
            secret=settings.secret,
            student=student,
        )
        submission.deadline = started + executor.notebook_timeout
        submission.kernels = kernels
        try:
            values = read_entry_values(submission, plugin)
        except (EntryProblem, TimeUp) as exc:
            return {"problem": str(exc), "entries": []}
        submission.lookup = lambda name: values.get(name, MISSING)
        result = score_challenge(submission, challenge)
        record = submission.records.get(challenge.key)
        if record is None:  # TRACKS was not a list of tracks: nothing scored, the reason is in the primary entry
            return {"problem": result.primary.problem, "entries": []}
        return {
            "problem": None,
            "show_name": record["show_name"],
            "count_this": values.get(SELECT_NAME) is True,
            "entries": record["entries"],
            "cells": record["cells"],
        }
    finally:
        shutil.rmtree(stage, ignore_errors=True)
