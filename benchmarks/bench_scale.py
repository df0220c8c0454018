"""Grading at course scale: stock nbgrader against this engine on one worker and on all cores, one run.

    .venv/bin/python benchmarks/bench_scale.py [--copies 2] [--rounds 1] [--workers N] [ASSIGNMENT ...]

First the price of one grader call into a sandboxed kernel, over the direct channel and as a Jupyter
execute request.  Then, for each assignment, every engine grades the same cohort (the honest part of
its demo cohort, reference, blank and typical mistakes, ``--copies`` times; attacks would hang or
break stock nbgrader) in a course of its own:

- stock nbgrader 0.9.6, serial, hidden tests in the student's kernel;
- this engine, one worker (``nbgrader autograde``), calls as Jupyter execute requests
  (``c.SandboxedExecute.direct_calls = False``: the engine before the direct channel);
- this engine, one worker, calls over the direct channel (the committed configuration);
- this engine on ``--workers`` workers (default: one per core) with ``mlphys autograde --workers N``,
  where this checkout has that command (otherwise the column says so).

Rounds alternate between the engines; the best round of each is reported, with the ratios and a
projection of 700 students x 6 assignments from the measured seconds per notebook.  The machine's
load average is printed with the figures: on a shared machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_autograde import REPO, STOCK_CONFIG, make_course, scores

from mlphys import assignments
from mlphys.cli import nbgrader

STUDENTS, ASSIGNMENTS = 700, 6
JUPYTER_CALLS = "\nc.SandboxedExecute.direct_calls = False\n"


# --------------------------------------------------------------------------------------------------
# One call


def bench_calls(count: int) -> None:
    """Seconds per grader call into a sandboxed kernel, over the channel and over Jupyter."""
    from nbformat.v4 import new_code_cell, new_notebook

    from mlphys.grading import handoff, isolated, run
    from mlphys.grading.submission import Submission

    timing = (
        "import time as _time\n_times = []\nfor _ in range({n}):\n    _t = _time.perf_counter()\n"
        "    {call}\n    _times.append(_time.perf_counter() - _t)\nsubmission.record('times', _times)"
    )
    calls = {
        "square(3.0)": "square(3.0)",
        "layer(array 4x16)": "layer(_x, _w)",
    }
    source = "import numpy as np\ndef square(x):\n    return x * x\ndef layer(x, w):\n    return np.tanh(x @ w)\n"
    print(f"one grader call into a sandboxed kernel, {count} calls each, microseconds")
    print(f"{'call':20} {'transport':9} {'median':>8} {'mean':>8} {'p99':>8}")
    for label, call in calls.items():
        medians = {}
        for direct in (True, False):
            hidden = "_x = np.ones((4, 16)); _w = np.ones((16, 16)) / 16\n" + timing.format(n=count, call=call)
            cell = new_code_cell("")
            cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 1}
            view = handoff.NotebookView("bench", "bench", {"t": handoff.TestCell("", hidden, 1.0)})
            isolation = isolated.Isolation()
            with isolated.staged_sandbox(isolation) as box:
                submission = Submission(files=box.submission, cells={}, isolation=isolation, secret="", student="b")
                grading = run.GradingRun(
                    box, isolation, view, submission, {}, notebook_timeout=600, memory_limit_mb=2048,
                    direct_calls=direct,
                )  # fmt: skip
                grading.grade(new_notebook(cells=[new_code_cell(source), cell]))
            times = sorted(submission.records.get("times", [float("nan")]))
            transport = "channel" if direct else "jupyter"
            medians[transport] = statistics.median(times)
            p99 = times[int(0.99 * (len(times) - 1))]
            print(f"{label:20} {transport:9} {1e6 * medians[transport]:8.0f} {1e6 * statistics.fmean(times):8.0f} "
                  f"{1e6 * p99:8.0f}")  # fmt: skip
        print(f"{label:20} jupyter / channel (median): {medians['jupyter'] / medians['channel']:.1f}x")
    print()


# --------------------------------------------------------------------------------------------------
# Whole cohorts


def has_parallel_autograde() -> bool:
    """Whether this checkout's ``mlphys`` has ``autograde --workers`` (the parallel grader)."""
    mlphys = Path(sys.executable).parent / "mlphys"
    help_text = subprocess.run([str(mlphys), "autograde", "--help"], capture_output=True, text=True)
    return help_text.returncode == 0 and "--workers" in help_text.stdout


@dataclasses.dataclass
class Engine:
    name: str
    root: Path
    config: str
    workers: int | None = None  # None: plain `nbgrader autograde`
    notebooks: int = 0
    best: float = float("inf")

    def grade(self, assignment: str) -> float:
        started = time.perf_counter()
        if self.workers is None:
            nbgrader(self.root, "autograde", assignment, "--force")
        else:
            mlphys = Path(sys.executable).parent / "mlphys"
            command = [str(mlphys), "autograde", assignment, "--force", "--workers", str(self.workers)]
            subprocess.run(command, cwd=self.root, check=True, capture_output=True)
        elapsed = time.perf_counter() - started
        self.best = min(self.best, elapsed)
        return elapsed

    @property
    def per_notebook(self) -> float:
        return self.best / self.notebooks


def bench(assignment: str, copies: int, rounds: int, workers: int, tmp: Path) -> dict[str, float]:
    ours = (REPO / "nbgrader_config.py").read_text()
    engines = [
        Engine("stock nbgrader", tmp / "stock", STOCK_CONFIG),
        Engine("mlphys, Jupyter calls", tmp / "jupyter", ours + JUPYTER_CALLS),
        Engine("mlphys, 1 worker", tmp / "channel", ours),
    ]
    parallel = has_parallel_autograde()
    if parallel:
        engines.append(Engine(f"mlphys, {workers} workers", tmp / "parallel", ours, workers=workers))
    for engine in engines:
        engine.root.mkdir()
        engine.notebooks = make_course(engine.root, engine.config, assignment, copies)
    for round_ in range(rounds):
        for engine in engines:
            elapsed = engine.grade(assignment)
            print(f"{assignment} round {round_ + 1}: {engine.name:22} {elapsed:7.2f} s, {engine.notebooks} notebooks")
    stock = engines[0]
    print(f"\n{assignment} ({datetime.date.today()}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'engine':22} {'notebooks':>9} {'best s':>8} {'s/notebook':>11} {'vs stock':>13}")
    for engine in engines:
        ratio = stock.best / engine.best
        versus = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
        print(f"{engine.name:22} {engine.notebooks:9d} {engine.best:8.2f} {engine.per_notebook:11.3f} {versus:>13}")
    if not parallel:
        print(f"mlphys, {workers} workers: not measured (this checkout has no `mlphys autograde --workers`)")
    channel_scores = scores(engines[2].root)
    for engine in [engines[1], *engines[3:]]:
        other = scores(engine.root)
        differ = sum(other.get(student) != score for student, score in channel_scores.items())
        print(f"scores of {engine.name!r} that differ from the channel's: {differ} of {len(channel_scores)}")
    print()
    costs = {"stock": stock.per_notebook, "one worker": engines[2].per_notebook}
    if parallel:
        costs["parallel"] = engines[3].per_notebook
        costs["workers"] = workers
    return costs


def project(costs: dict[str, dict[str, float]]) -> None:
    """700 students x 6 assignments, from the measured seconds per notebook (mean over the assignments)."""
    notebooks = STUDENTS * ASSIGNMENTS
    one = statistics.fmean(c["one worker"] for c in costs.values())
    stock = statistics.fmean(c["stock"] for c in costs.values())
    # Parallel efficiency: measured where a parallel run was, else assumed perfect (an upper bound).
    measured = [c["one worker"] / (c["parallel"] * c["workers"]) for c in costs.values() if "parallel" in c]
    efficiency = statistics.fmean(measured) if measured else 1.0
    source = "measured" if measured else "assumed (no parallel run measured): an optimistic bound"
    print(f"projection: {STUDENTS} students x {ASSIGNMENTS} assignments = {notebooks} notebooks, "
          f"{one:.2f} s/notebook on one worker (mean of {', '.join(costs)})")  # fmt: skip
    print(f"parallel efficiency per worker: {efficiency:.2f} ({source})")
    print(f"{'where':44} {'workers':>7} {'hours':>7}")
    print(f"{'stock nbgrader, serial':44} {1:7d} {notebooks * stock / 3600:7.1f}")
    print(f"{'this engine, one worker':44} {1:7d} {notebooks * one / 3600:7.1f}")
    for where, workers in (
        ("one 16-core machine", 16),
        ("Dask cluster, 4 nodes x 16 cores", 64),
        ("Dask cluster, 16 nodes x 16 cores", 256),
    ):
        print(f"{where:44} {workers:7d} {notebooks * one / (workers * efficiency) / 3600:7.2f}")
    print("(01 and 02 are the light assignments; challenges that train or score networks cost more per notebook)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", default=["01_xor_nets", "02_backprop"])
    parser.add_argument("--copies", type=int, default=2, help="copies of the honest cohort")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--calls", type=int, default=2000, help="calls timed per transport (0: skip)")
    args = parser.parse_args()
    if args.calls:
        bench_calls(args.calls)
    costs: dict[str, dict[str, float]] = {}
    for assignment in args.assignments:
        assignments.get(assignment)  # an unknown id fails here, before anything is graded
        with tempfile.TemporaryDirectory() as tmp:
            costs[assignment] = bench(assignment, args.copies, args.rounds, args.workers, Path(tmp))
    project(costs)


if __name__ == "__main__":
    main()
