"""What scoring one live entry costs, cold (a new sandboxed kernel for every session, as autograde) against warm (the
live service's pool of kernels launched ahead, each still serving one session of one entry), for the reference
entry of every challenge, with the service's own steps around it (claim, staging, store, no publishing).

    .venv/bin/python benchmarks/bench_live_scoring.py [--rounds 3] [--pause 4]

Each round hands in one reference entry and scores it with ``LiveService.score_next``; ``--pause`` seconds pass
before each warm round, as a service has between entries (its pool's replacements boot meanwhile).  The baseline
scores the same entry through the same service and the same challenge code with the student's cells run in this
process instead of a sandboxed kernel (:class:`InProcessKernels`): the model's own compute and the service's
steps, without any kernel.  Warm minus baseline is what the sandboxed kernels still cost.  06 runs no student
code (its RBM is scored here), so its three figures differ only by noise; its cache of scored weights is
emptied before every round, so that each round computes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import time
import typing as t
from pathlib import Path

from mlphys import assignments
from mlphys.demo import DEMO_SECRET
from mlphys.demo.case import Materials
from mlphys.grading.isolated import CellFailed
from mlphys.kernel import bridge, wire

REPO = Path(__file__).resolve().parent.parent


def course(root: Path, assignment: str) -> None:
    root.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    now = dt.datetime.now(dt.UTC)
    (root / "challenges.toml").write_text(
        f'["{assignment}"]\nstart = {(now - dt.timedelta(hours=1)).isoformat()}\n'
        f"end = {(now + dt.timedelta(hours=1)).isoformat()}\n"
    )


class InProcessSession:
    """The student's cells run in a namespace of this process, answering bridge requests as a kernel would."""

    def __init__(self, cells: list[str]) -> None:
        self.namespace: dict[str, t.Any] = {}
        for index, source in enumerate(cells):
            try:
                exec(source, self.namespace)
            except Exception as exc:
                raise CellFailed(index, type(exc).__name__, str(exc)) from None

    def call(self, request: dict[str, t.Any]) -> t.Any:
        # The kernel's reply travels as JSON and is decoded by the grader: the same round trip, without the kernel.
        return wire.loads(json.dumps(bridge._handle_in(self.namespace, request)))


class InProcessKernels:
    """A stand-in for :class:`~mlphys.grading.warm_kernels.WarmKernels` that runs sessions in this process (the
    baseline: no sandbox, no kernel; never for students' code outside a benchmark), with as many torch threads
    as a sandboxed kernel gets (``threads``; 0: torch's own choice), so that the compute is the same."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    @contextlib.contextmanager
    def session(self, cells: list[str], deadline: float, isolation: t.Any = None) -> t.Iterator[InProcessSession]:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads or before)
        try:
            yield InProcessSession(cells)
        finally:
            torch.set_num_threads(before)

    def refill(self) -> None:
        pass


def forget_scores(assignment: str) -> None:
    """Empty 06's cache of scored weights, so that every round computes the log-likelihood again."""
    if assignment == "06_boltzmann_mnist":
        from mlphys.assignments.boltzmann_mnist import scoring

        scoring._SCORED.clear()


def seconds_per_entry(assignment: str, mode: str, rounds: int, pause: float) -> list[float]:
    """Seconds per entry scored by the service: ``mode`` "cold", "warm" (a pool of three) or "in-process"."""
    from mlphys.live import service

    warm = 3 if mode == "warm" else 0

    plugin = assignments.get(assignment)
    materials = Materials(REPO, assignment, plugin.notebook)
    (reference,) = [c for c in plugin.cases(materials) if c.student == "ref_solution"]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "course"
        course(root, assignment)
        live = service.LiveService(service.LiveCourse.load(root), settle=0, warm_kernels=warm)
        if mode == "in-process":
            live.kernels = InProcessKernels(live.course.settings.isolation().limits.threads)
        times = []
        with live:
            for index in range(rounds + 1):  # the first round of each mode is a warm-up, not counted
                folder = live.course.inbound / f"s{index}+{assignment}+2026-12-06 10:00:00.000000 UTC+{index:04x}"
                folder.mkdir(parents=True)
                reference.write(folder, materials)
                from mlphys.live import intake

                intake.take_in(live.store, live.course.inbound, live.course.rules, settle=0)
                if warm:
                    time.sleep(pause)
                forget_scores(assignment)
                started = time.perf_counter()
                assert live.score_next()
                if index:
                    times.append(time.perf_counter() - started)
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pause", type=float, default=4.0)
    parser.add_argument("--assignments", nargs="*", default=list(assignments.challenges()))
    args = parser.parse_args()
    os.environ.setdefault("MLPHYS_CHALLENGE_SECRET", DEMO_SECRET)
    os.environ.setdefault("MLPHYS_MNIST", str(REPO.parent / "shared" / "data" / "mnist"))
    print(f"median of {args.rounds} rounds, {os.cpu_count()} cores, a pause of {args.pause:g} s before each warm round")
    print(f"{'challenge':26} {'cold s':>8} {'warm s':>8} {'in-proc s':>9} {'cold/warm':>9} {'warm - in-proc s':>16}")
    for assignment in args.assignments:
        cold, warm, local = (
            statistics.median(seconds_per_entry(assignment, mode, args.rounds, args.pause))
            for mode in ("cold", "warm", "in-process")
        )
        print(
            f"{assignment:26} {cold:8.2f} {warm:8.2f} {local:9.2f} {cold / warm:9.1f} {warm - local:16.2f}", flush=True
        )


if __name__ == "__main__":
    main()
