"""Autograde several students at once: nbgrader's own autograde, one student per process, on a pool or on Dask.

nbgrader's ``Autograde`` converter loops over the submissions one after the other (``convert_notebooks``), and
no setting changes that: parallel autograde has been its issue #174 since 2015.  ``mlphys autograde`` therefore
runs nbgrader's own app once per student (``nbgrader autograde ASSIGNMENT --student S`` with the course's
``nbgrader_config.py`` and the caller's other arguments), each in a process of its own, several at once:

1. :func:`find_students` lists the submissions nbgrader would grade (its folder layout and exclusions);
2. :func:`prepare_gradebook` creates, once, what the first writers would otherwise race to create;
3. :func:`grade_student` grades one :class:`StudentJob` and returns a :class:`StudentResult`: it starts
   :func:`autograde_in_this_process` in a fresh process forked from a warm one (nbgrader and the engine already
   imported, so a student costs no start-up of Python) and waits for it, up to the job's time limit;
4. :func:`autograde` hands the jobs to a local thread pool (one thread waits for one such process; default one
   per core) or, with a scheduler address, to a ``dask.distributed`` cluster, and prints each student's log in
   student order, as one ``nbgrader autograde`` run would, with a progress bar on a terminal.

What one student's grading can do to the run is bounded by its process: it may crash, hang (it is stopped after
``timeout`` seconds, as nbgrader stops on Ctrl-C, so its sandbox is cleaned up and its half-written result
removed) or allocate without end: the process's address space is capped (``RLIMIT_AS``), so the grader's own
handling of one submission (weights files, replies from the kernel) fails with ``MemoryError`` in that student's
process instead of exhausting the machine; the student's kernel has its own limits, set by the sandbox.  With
several workers the grader and each sandboxed kernel get one BLAS/OpenMP/torch thread
(``c.SandboxedExecute.kernel_threads``), so students do not fight over cores.

Concurrent writers share the gradebook: an SQLite gradebook is put into write-ahead-log mode (readers do not
hold up writers) and opened by the workers with a long busy timeout (``?timeout=``), so a writer waits for the
lock instead of failing with "database is locked"; PostgreSQL needs nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import glob
import json
import multiprocessing
import os
import re
import resource
import signal
import sys
import tempfile
import time
import typing as t
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import as_completed as local_as_completed
from pathlib import Path

from mlphys.grading.progress import Progress
from mlphys.grading.sandbox import THREAD_VARIABLES

# Imported once in the warm process every student's process is forked from.
WARM_MODULES = [
    # What the `mlphys` script imports: before Python 3.13.8 the fork server runs the caller's main script again in
    # every process it starts, even with "__main__" preloaded (CPython gh-137996): about 0.25 s a student.
    "mlphys.cli",
    "nbgrader.apps",
    "mlphys.grading.preprocessors",
    "mlphys.grading.records",
    "mlphys.grading.pages",
    "mlphys.grading.intake",
    "mlphys.grading.regrade",
]
LAST_WARM_MODULE = "mlphys.grading.warmup"  # does, once, what each student would repeat; freezes the warm objects
SQLITE_BUSY_TIMEOUT_S = 300  # how long a worker waits for the SQLite gradebook's write lock
DEFAULT_MEMORY_LIMIT_MB = 6144  # the grader's own address space per student (torch alone maps about 0.7 GB)
DEFAULT_TIMEOUT_S = 3600  # one student's whole autograde, kernels included
STOP_GRACE_S = 30  # after Ctrl-C, how long a stopped student's process may take to clean up


@dataclasses.dataclass(frozen=True)
class StudentJob:
    """Autograde one student's submission of one assignment in the course at ``course_root``."""

    course_root: str  # absolute; on a cluster, the same path on every machine (shared storage)
    assignment: str
    student: str
    nbgrader_args: tuple[str, ...] = ()  # e.g. ("--force",), passed to nbgrader autograde as given
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB  # address space of the grader's process; 0: none
    timeout: float = DEFAULT_TIMEOUT_S  # seconds; 0: none
    single_thread: bool = False  # one BLAS/OpenMP/torch thread in the grader and in the student's kernel
    # The environment nbgrader runs in (the course's config reads the challenge secret from it): the caller's on
    # the local pool; None on a cluster, where each worker's own applies (no secret travels over the network).
    environment: dict[str, str] | None = None

    def argv(self) -> list[str]:
        """The ``nbgrader`` command line this job runs (without the program name)."""
        args = ["autograde", self.assignment, "--student", glob.escape(self.student)]
        if self.single_thread:
            args.append("--SandboxedExecute.kernel_threads=1")
        return args + list(self.nbgrader_args)


@dataclasses.dataclass(frozen=True)
class StudentResult:
    """How one student's autograde went: nbgrader's log, and a problem in words if it failed."""

    student: str
    log: str
    seconds: float
    exit_code: int | None  # the process's; negative: the signal that ended it
    peak_memory_mb: float | None  # the grader process's peak address space, what the bound limits (None if it died)
    problem: str | None = None

    @property
    def failed(self) -> bool:
        return self.problem is not None


# ---- one student ---------------------------------------------------------------------------------------


def autograde_in_this_process(job: StudentJob, log_path: str, result_path: str) -> None:
    """Run ``nbgrader autograde`` for one student here, with the job's bounds; exit with nbgrader's status.

    The entry point of a student's process: its output goes to ``log_path``, its exit status and peak memory
    to ``result_path`` (JSON).
    """
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir(job.course_root)
    if job.environment is not None:  # as the caller had it now, not as the warm process found it at its start
        os.environ.clear()
        os.environ.update(job.environment)
        tempfile.tempdir = None  # where sandboxes are staged: $TMPDIR of the job, not of the warm process
    if job.single_thread:
        os.environ.update({variable: "1" for variable in THREAD_VARIABLES})
    if job.memory_limit_mb > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        # The soft limit only: the sandbox raises its kernel's own (prlimit) and may need to go above this one.
        resource.setrlimit(resource.RLIMIT_AS, (job.memory_limit_mb * 2**20, hard))
    from nbgrader.apps import NbGraderApp

    code = 0
    try:
        NbGraderApp.launch_instance(argv=job.argv())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MemoryError:
        print(f"[mlphys autograde] grading {job.student} needed more than {job.memory_limit_mb} MB", file=sys.stderr)
        code = 3
    finally:
        # What the bound limits: the process's peak address space (Linux), else its peak resident memory.
        status = Path("/proc/self/status").read_text() if os.path.exists("/proc/self/status") else ""
        mapped = re.search(r"VmPeak:\s+(\d+) kB", status)
        peak_kb = int(mapped[1]) if mapped else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        Path(result_path).write_text(json.dumps({"exit_code": code, "peak_memory_mb": peak_kb / 1024}))
    sys.exit(code)


def _warm_context() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    # Used when the fork server starts (the first student).  The assignments' plug-ins too: the engine's
    # registry imports every one of them for each student otherwise (about 0.3 s a student).
    # And the caller's main module (the `mlphys` script, a Dask worker, pytest), which a process the fork server
    # starts runs again unless the server has (Python 3.13.8 and later; see WARM_MODULES).
    context.set_forkserver_preload(["__main__", *WARM_MODULES, *assignment_modules(), LAST_WARM_MODULE])
    return context


def start_warm_process() -> None:
    """Start the warm process now, if it is not running: it imports the engine (seconds) in the background
    while the caller goes on, instead of when the first student's process is asked of it."""
    from multiprocessing import forkserver

    _warm_context()
    forkserver.ensure_running()


def assignment_modules() -> list[str]:
    """The modules of the course's assignment plug-ins, found as the registry finds them (without importing)."""
    import pkgutil

    import mlphys.assignments

    return [
        f"mlphys.assignments.{module.name}"
        for module in pkgutil.iter_modules(mlphys.assignments.__path__)
        if module.ispkg
    ]


def grade_student(job: StudentJob) -> StudentResult:
    """Autograde one student in a fresh process, wait for it (at most ``job.timeout``), and say how it went.

    Runs in a thread of the local pool or as a task on a Dask worker.
    """
    if multiprocessing.current_process().daemon:
        raise RuntimeError(
            "mlphys autograde starts one process per student, which a daemonic process may not: start the Dask "
            "workers with DASK_DISTRIBUTED__WORKER__DAEMON=False (or `dask worker --no-nanny`)."
        )
    if job.single_thread:
        # Before the fork server starts, since numpy's BLAS reads them when it is loaded there.
        os.environ.update({variable: "1" for variable in THREAD_VARIABLES})
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mlphys-autograde-") as scratch:
        log_path, result_path = os.path.join(scratch, "log"), os.path.join(scratch, "result.json")
        process = _warm_context().Process(
            target=autograde_in_this_process, args=(job, log_path, result_path), name=f"autograde {job.student}"
        )
        process.start()
        process.join(job.timeout or None)
        timed_out = process.is_alive()
        killed = timed_out and not _stop(process)
        log = Path(log_path).read_text(errors="replace") if os.path.exists(log_path) else ""
        reported = json.loads(Path(result_path).read_text()) if os.path.exists(result_path) else {}
    seconds = time.monotonic() - started
    problem = _problem(job, process.exitcode, reported, log)
    if timed_out and problem is not None:
        problem = f"stopped after its time limit of {job.timeout:g} s"
        problem += f"; it did not stop within {STOP_GRACE_S} s of Ctrl-C and was killed" if killed else ""
    # (A process that finished its grading after all, in the moments after Ctrl-C, has a complete result.)
    return StudentResult(job.student, log, seconds, process.exitcode, reported.get("peak_memory_mb"), problem)


def _stop(process: multiprocessing.process.BaseProcess) -> bool:
    """Stop a student's process as Ctrl-C stops nbgrader (its sandbox is cleaned up), or else kill it.
    Returns whether it stopped by itself."""
    try:
        os.kill(t.cast(int, process.pid), signal.SIGINT)
    except ProcessLookupError:
        return True
    process.join(STOP_GRACE_S)
    if not process.is_alive():
        return True
    process.kill()
    process.join()
    return False


def _problem(job: StudentJob, exit_code: int | None, reported: dict[str, t.Any], log: str) -> str | None:
    """Why this student's autograde failed, in words for the instructor; None if it did not."""
    if exit_code == 0:
        return None
    if "MemoryError" in log or reported.get("exit_code") == 3:
        return f"the grader's handling of this submission needed more than its {job.memory_limit_mb} MB"
    if exit_code < 0:
        return f"the grading process died ({signal.Signals(-exit_code).name})"
    if not reported:
        return f"the grading process ended before it reported (exit status {exit_code})"
    return f"nbgrader autograde failed (exit status {exit_code}); see the log above"


# ---- the course ----------------------------------------------------------------------------------------


def read_config(root: Path) -> t.Any:
    """The configuration nbgrader itself would use in ``root`` (its app's own loading: user, environment, course;
    not a copy of it).  Also what `mlphys leaderboard` reads."""
    from nbgrader.apps.baseapp import NbGrader

    app = NbGrader()
    here = os.getcwd()
    os.chdir(root)
    try:
        app.load_config_file()
    finally:
        os.chdir(here)
    return app.config


def find_students(root: Path, assignment: str, patterns: Iterable[str] = ()) -> list[str]:
    """The students with a submission of ``assignment``, as nbgrader finds them (its folder layout and
    ``student_id_exclude``), sorted as nbgrader grades them; ``patterns`` (nbgrader's ``--student`` globs) narrow
    the list."""
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=read_config(root), root=str(root))
    found = glob.glob(coursedir.format_path(coursedir.submitted_directory, "*", assignment))
    pattern = coursedir.format_path(coursedir.submitted_directory, "(?P<student>.*)", assignment, escape=True)
    regexp = re.compile(pattern)
    excluded = set(filter(None, coursedir.student_id_exclude.split(",")))
    students = []
    for path in sorted(found):
        match = regexp.fullmatch(path)
        if match is None or not os.path.isdir(path) or match["student"] in excluded:
            continue
        if not patterns or any(fnmatch.fnmatchcase(match["student"], p) for p in patterns):
            students.append(match["student"])
    return students


def gradebook_url(config: t.Any, root: Path) -> str:
    """The course's gradebook URL (``c.CourseDirectory.db_url``, nbgrader's default where unset), with a relative
    SQLite path made absolute: nbgrader resolves it against the directory it runs in, the course root."""
    db_url = config.CourseDirectory.get("db_url", "sqlite:///gradebook.db")
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
        db_url = "sqlite:///" + str(root.resolve() / db_url[len("sqlite:///") :])
    return db_url


def worker_db_url(db_url: str) -> str:
    """The gradebook URL the workers use: SQLite with a busy timeout (writers wait for each other's lock)."""
    if db_url.startswith("sqlite:") and "?" not in db_url:
        return f"{db_url}?timeout={SQLITE_BUSY_TIMEOUT_S}"
    return db_url


def worker_db_args(db_url: str) -> tuple[str, ...]:
    """What the workers' nbgrader gets on its command line about the gradebook: an SQLite URL (absolute, with its
    busy timeout); nothing for a database server, whose URL each worker reads from the course's configuration as
    nbgrader does, so that a password written into it (against the advice of docs/instructors/scale.md) never travels
    with the jobs to a cluster."""
    return (f"--CourseDirectory.db_url={db_url}",) if db_url.startswith("sqlite:") else ()


def prepare_gradebook(root: Path) -> str:
    """Open the gradebook once before the workers do: the course and the records table exist, so no two
    workers race to create them.  Returns the URL the workers use (see worker_db_args)."""
    from nbgrader.api import Gradebook

    from mlphys.grading import records

    # nbgrader runs tools of its environment (alembic, for a new gradebook) by name; so may the workers.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    config = read_config(root)
    db_url = gradebook_url(config, root)
    course_id = config.CourseDirectory.get("course_id", "default_course")
    with Gradebook(db_url, course_id) as gb:
        records.prepare(gb)
    if db_url.startswith("sqlite:"):
        use_write_ahead_log(db_url)
    return worker_db_url(db_url)


def use_write_ahead_log(db_url: str) -> None:
    """Put an SQLite gradebook into write-ahead-log mode (it stays so): a grader that reads the gradebook
    while its student's kernel runs then holds up no other grader's write, as it does in SQLite's default
    rollback-journal mode.  Plain nbgrader reads and writes such a gradebook as before."""
    import sqlite3

    from sqlalchemy.engine import make_url

    path = make_url(db_url).database
    if not path or path == ":memory:":
        return
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


# ---- the run -------------------------------------------------------------------------------------------


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_jobs(jobs: list[StudentJob], workers: int, scheduler: str | None = None) -> Iterator[StudentResult]:
    """Grade every job; yield each result as it is done (in no particular order)."""
    if scheduler is None:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autograde") as pool:
            for future in local_as_completed([pool.submit(grade_student, job) for job in jobs]):
                yield future.result()
        return
    from distributed import Client
    from distributed import as_completed as dask_as_completed

    with Client(scheduler) as client:
        futures = [client.submit(grade_student, job, pure=False, key=f"autograde-{job.student}") for job in jobs]
        for future in dask_as_completed(futures):
            yield future.result()


def autograde(
    root: Path,
    assignment: str,
    students: Iterable[str] = (),
    nbgrader_args: Iterable[str] = (),
    workers: int | None = None,
    scheduler: str | None = None,
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
    timeout: float = DEFAULT_TIMEOUT_S,
    out: t.TextIO | None = None,
) -> list[StudentResult]:
    """Autograde every matching student's submission of ``assignment``, several at once; print each student's
    log in student order (to ``out``, default stdout) and a line for each failure; return the results in
    student order."""
    out = out or sys.stdout
    if scheduler is None:  # the warm process imports the engine while this one reads the course
        start_warm_process()
    root = root.resolve()
    names = find_students(root, assignment, students)
    if not names:
        print(f"[mlphys autograde] no submissions of {assignment} to grade in {root}", file=out)
    workers = workers or default_workers()
    args = (*worker_db_args(prepare_gradebook(root)), *nbgrader_args)
    single_thread = workers > 1 or scheduler is not None
    environment = dict(os.environ) if scheduler is None else None
    jobs = [
        StudentJob(str(root), assignment, s, args, memory_limit_mb, timeout, single_thread, environment) for s in names
    ]
    done: dict[str, StudentResult] = {}
    printed = 0
    with Progress(len(jobs), "students") as progress:
        for result in run_jobs(jobs, workers, scheduler):
            done[result.student] = result
            progress.done(failed=result.failed)
            while printed < len(names) and names[printed] in done:  # logs in student order, as they come
                _print_result(progress, done[names[printed]], out)
                printed += 1
    failed = [done[s] for s in names if done[s].failed]
    if failed:
        progress.write(f"[mlphys autograde] {len(failed)} of {len(names)} students failed:", out)
        for result in failed:
            progress.write(f"[mlphys autograde]   {result.student}: {result.problem}", out)
    return [done[s] for s in names]


def _print_result(progress: Progress, result: StudentResult, out: t.TextIO) -> None:
    if result.log.strip():
        progress.write(result.log, out)
    if result.problem is not None:
        progress.write(f"[mlphys autograde] ERROR {result.student}: {result.problem}", out)
