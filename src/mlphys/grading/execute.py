"""The autograde execution step: student code in a sandboxed kernel, verdicts in the grader.

:class:`SandboxedExecute` replaces nbgrader's ``Execute`` preprocessor.  For every notebook it

1. reads the notebook's test cells from the gradebook (:class:`~mlphys.grading.handoff.NotebookView`);
2. copies the submission's regular files into a fresh sandbox work directory;
3. grades the notebook in one :class:`~mlphys.grading.run.GradingRun`: the cells run in order in a
   sandboxed kernel, but only the visible part of each test cell; after each test cell its hidden part
   runs in this process, where calls to the student's functions go to the kernel as plain data;
4. hands the verdicts and records on to the later steps (:mod:`mlphys.grading.handoff`).  The hidden
   parts are gone from the cells, so neither the autograded notebook nor its feedback shows them.
"""

from __future__ import annotations

import os
import shutil
import stat
import typing as t
from pathlib import Path

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Integer, Unicode

from mlphys import assignments
from mlphys.grading import challenge, checks, isolated, sandbox, variants
from mlphys.grading.handoff import RECORDS_KEY, VERDICTS_KEY, NotebookView, is_test_cell, solution_sources
from mlphys.grading.run import GradingRun
from mlphys.grading.submission import Submission

__all__ = ["RECORDS_KEY", "VERDICTS_KEY", "SandboxedExecute", "is_test_cell", "sandbox_problem"]
_sandbox_problem: dict[str, str | None] = {}


def sandbox_problem() -> str | None:
    """Why no sandbox can be made here (checked once per process), or None."""
    if "bwrap" not in _sandbox_problem:
        _sandbox_problem["bwrap"] = sandbox.bwrap_available()
    return _sandbox_problem["bwrap"]


def stage_files(source_dir: Path, dest: Path, max_bytes: int, max_files: int) -> list[str]:
    """Copy the regular files of a submission into the sandbox; report what was left out."""
    skipped: list[str] = []
    total = count = 0
    for dirpath, dirnames, filenames in os.walk(source_dir):
        rel_dir = Path(dirpath).relative_to(source_dir)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            src = Path(dirpath, name)
            rel = rel_dir / name
            st = os.lstat(src)
            if not stat.S_ISREG(st.st_mode):
                skipped.append(f"{rel} (not a regular file)")
                continue
            if name.endswith(".ipynb"):
                continue
            if total + st.st_size > max_bytes or count >= max_files:
                skipped.append(f"{rel} (the submission's files are too large or too many)")
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fin, open(target, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            total += st.st_size
            count += 1
    return skipped


def _safe_name(name: t.Any) -> str:
    """A file name made from an id (ids come from folder names, which a student may have chosen)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name)).lstrip(".")
    return cleaned[:100] or "_"


def trusted_names(assignment_id: str) -> dict[str, t.Any]:
    """The names hidden tests of an assignment see besides ``submission``: the kit and the assignment's own."""
    names: dict[str, t.Any] = {name: getattr(checks, name) for name in checks.__all__}
    plugin = assignments.registry().get(assignment_id)
    if plugin is not None:
        if plugin.challenge is not None:
            names.update(challenge.hidden_names(plugin.challenge))
        names.update(plugin.hidden_names)
    return names


class SandboxedExecute(NbGraderPreprocessor):
    """Run a submission in a sandboxed kernel and judge its test cells in the grader."""

    timeout = Integer(60, help="Seconds one cell may run in the student's kernel.").tag(config=True)
    notebook_timeout = Integer(600, help="Seconds the whole notebook may run.").tag(config=True)
    startup_timeout = Integer(60, help="Seconds the sandboxed kernel may take to start.").tag(config=True)
    memory_limit_mb = Integer(4096, help="Memory for the kernel and all it starts (cgroup).").tag(config=True)
    max_processes = Integer(64, help="Processes and threads the kernel may have (cgroup).").tag(config=True)
    max_file_mb = Integer(256, help="Largest file the kernel may write.").tag(config=True)
    disk_mb = Integer(512, help="Size of the kernel's private work directory (memory-backed).").tag(config=True)
    max_output_mb_per_cell = Integer(1, help="Output kept per cell; the rest is dropped.").tag(config=True)
    max_output_mb = Integer(8, help="Output after which the notebook's kernel is stopped.").tag(config=True)
    max_submission_mb = Integer(100, help="Size of the files copied into the sandbox.").tag(config=True)
    allow_unsandboxed = Bool(
        False,
        help=(
            "Run student code without bubblewrap when no sandbox can be made. Dangerous: the student's code "
            "then runs with the grader's rights. Hidden tests still run only in the grader."
        ),
    ).tag(config=True)

    challenge_secret = Unicode(
        "",
        help=(
            "The course's secret from which challenges draw their hidden test images. Keep it out of the "
            "students' reach (an environment variable read in nbgrader_config.py); the same secret gives the "
            "same hidden images, hence the same scores, every time."
        ),
    ).tag(config=True)

    gpu = Bool(
        False,
        help=(
            "Hand the host's NVIDIA GPUs (/dev/nvidia*) to every sandbox, for challenges whose scoring or "
            "retraining runs the student's network. Off by default: a GPU is shared state between students."
        ),
    ).tag(config=True)
    kernel_threads = Integer(
        1,
        help=(
            "BLAS/OpenMP/torch threads of each sandboxed kernel; 0 leaves it to the libraries (one per core). "
            "One by default: kernels graded side by side do not fight for cores, and a challenge's floating-point "
            "sums come out the same however many students are graded at once (deterministic grading)."
        ),
    ).tag(config=True)
    direct_calls = Bool(
        True,
        help=(
            "Send the hidden tests' calls into the student's kernel over a direct Unix-socket channel (well "
            "under a millisecond each) instead of one Jupyter execute request per call (several milliseconds). "
            "Replies are validated the same way; a kernel that does not connect is graded over Jupyter."
        ),
    ).tag(config=True)
    kernel_log_dir = Unicode(
        "logs",
        help="Folder (relative to the course directory) for each student's kernel output: logs/ASSIGNMENT/STUDENT.log.",
    ).tag(config=True)

    def isolation(self, use_bwrap: bool = True, kernel_log: Path | None = None) -> isolated.Isolation:
        """The limits every sandboxed kernel of this grading run gets."""
        limits = sandbox.Limits(
            memory_bytes=self.memory_limit_mb * 2**20,
            address_space_bytes=max(16 * 2**30, 4 * self.memory_limit_mb * 2**20),
            max_processes=self.max_processes,
            max_file_bytes=self.max_file_mb * 2**20,
            disk_bytes=self.disk_mb * 2**20,
            threads=self.kernel_threads,
        )
        return isolated.Isolation(
            limits=limits,
            use_bwrap=use_bwrap,
            timeout=self.timeout,
            startup_timeout=self.startup_timeout,
            max_output_bytes=self.max_output_mb_per_cell * 1_000_000,
            max_output_bytes_total=self.max_output_mb * 1_000_000,
            kernel_log=kernel_log,
            gpu=self.gpu,
        )

    def preprocess(self, nb: NotebookNode, resources: dict[str, t.Any]) -> tuple[NotebookNode, dict[str, t.Any]]:
        problem = sandbox_problem()
        if problem and not self.allow_unsandboxed:
            raise sandbox.SandboxUnavailable(
                f"No sandbox for student code: {problem}. Refusing to run student code. To run it anyway, "
                "unsandboxed, set c.SandboxedExecute.allow_unsandboxed = True in nbgrader_config.py."
            )
        if problem:
            self.log.warning("Running student code WITHOUT a sandbox (%s)", problem)
        view = NotebookView.load(resources)
        plugin = assignments.registry().get(view.assignment)
        if plugin is not None and plugin.needs_secret and not self.challenge_secret:
            raise RuntimeError(
                f"{view.assignment} draws hidden test data from the course secret, and none is set: anyone "
                "could compute that data from a public default. Set MLPHYS_CHALLENGE_SECRET in the grader's "
                "environment (read by nbgrader_config.py into c.SandboxedExecute.challenge_secret)."
            )
        info = resources["nbgrader"]
        if plugin is not None and plugin.variant is not None:
            student = str(info["student"])
            variants.write_variant_cell(nb, plugin.variant(self.challenge_secret, student), student)
        log = Path(self.kernel_log_dir) / _safe_name(info["assignment"]) / f"{_safe_name(info['student'])}.log"
        isolation = self.isolation(use_bwrap=problem is None, kernel_log=log.resolve())
        submission_dir = Path(resources.get("metadata", {}).get("path") or ".")
        with isolated.staged_sandbox(isolation, lambda dest: self._stage(submission_dir, dest)) as box:
            if box.cgroup is None:
                self.log.warning("No cgroup available: memory and process limits are per process only")
            submission = Submission(
                files=box.submission,
                cells=solution_sources(nb),
                isolation=isolation,
                secret=self.challenge_secret,
                student=str(info["student"]),
            )
            run = GradingRun(
                box,
                isolation,
                view,
                submission,
                trusted_names(view.assignment),
                notebook_timeout=self.notebook_timeout,
                memory_limit_mb=self.memory_limit_mb,
                direct_calls=self.direct_calls,
            )
            run.grade(nb)
        resources[VERDICTS_KEY] = run.verdicts
        resources[RECORDS_KEY] = submission.records
        return nb, resources

    def _stage(self, submission_dir: Path, dest: Path) -> None:
        for entry in stage_files(submission_dir, dest, self.max_submission_mb * 2**20, 2000):
            self.log.warning("Not copied into the sandbox: %s", entry)
