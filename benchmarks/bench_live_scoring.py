"""What scoring one live entry costs, cold (a new sandboxed kernel for every call, as autograde) against warm (the
live service's pool of kernels launched ahead, each still used for one call of one entry), for the reference
entry of every challenge, with the service's own steps around it (claim, staging, store, no publishing).

    .venv/bin/python benchmarks/bench_live_scoring.py [--rounds 3] [--pause 4]

Each round hands in one reference entry and scores it with ``LiveService.score_next``; ``--pause`` seconds pass
before each warm round, as a service has between entries (its pool's replacements boot meanwhile).  The figure
beyond compute subtracts the in-process cost of the same computation where ``bench_challenge.py`` measures it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mlphys import assignments
from mlphys.demo import DEMO_SECRET
from mlphys.demo.case import Materials

REPO = Path(__file__).resolve().parent.parent


def course(root: Path, assignment: str) -> None:
    root.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    now = dt.datetime.now(dt.UTC)
    (root / "challenges.toml").write_text(
        f'["{assignment}"]\nstart = {(now - dt.timedelta(hours=1)).isoformat()}\n'
        f"end = {(now + dt.timedelta(hours=1)).isoformat()}\n"
    )


def seconds_per_entry(assignment: str, warm: int, rounds: int, pause: float) -> list[float]:
    from mlphys.live import service

    plugin = assignments.get(assignment)
    materials = Materials(REPO, assignment, plugin.notebook)
    (reference,) = [c for c in plugin.cases(materials) if c.student == "ref_solution"]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "course"
        course(root, assignment)
        live = service.LiveService(service.LiveCourse.load(root), settle=0, warm_kernels=warm)
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
    print(f"{'challenge':26} {'cold s':>8} {'warm s':>8} {'cold/warm':>9}")
    for assignment in args.assignments:
        cold = statistics.median(seconds_per_entry(assignment, 0, args.rounds, args.pause))
        warm = statistics.median(seconds_per_entry(assignment, 3, args.rounds, args.pause))
        print(f"{assignment:26} {cold:8.2f} {warm:8.2f} {cold / warm:9.1f}", flush=True)


if __name__ == "__main__":
    main()
