"""The Grand Autoencoder Challenge's reference entry: cost and training time on every track, and what
scoring one entry costs, sandboxed (two fresh kernels) against the same scoring in this process.

    .venv/bin/python benchmarks/bench_challenge.py [--tracks MEDIUM/NORMAL HARD/NORMAL ...] [--rounds 3]

Training uses the reference cells of ``source/03_autoencoder_challenge`` (seed 0, images from seed 1,
as the notebook does); costs are on the public and private hidden images of the demo secret.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import typing as t
from pathlib import Path

import torch

from mlphys.assignments.autoencoder_challenge.cases import reference_cell
from mlphys.course import autoencoder
from mlphys.course.circles import ImageBudget
from mlphys.demo.case import Materials
from mlphys.grading import challenge
from mlphys.grading.execute import sandbox_problem
from mlphys.grading.isolated import Isolation
from mlphys.grading.submission import MISSING, Submission

REPO = Path(__file__).resolve().parent.parent
SECRET = "ml4physics-demo-secret"


def submission(folder: Path, cells: dict[str, str], track: str, in_process: dict[str, t.Any] | None) -> Submission:
    values = {"TRACKS": [track], "SHOW_MY_NAME": False}
    return Submission(
        files=folder,
        cells=cells,
        lookup=lambda name: values.get(name, MISSING),
        isolation=Isolation(use_bwrap=sandbox_problem() is None),
        secret=SECRET,
        records={},
        in_process=in_process,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", nargs="*", default=list(autoencoder.TRACKS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    materials = Materials(REPO, "03_autoencoder_challenge", "autoencoder_challenge")
    cells = {cell: reference_cell(materials, cell) for cell in (challenge.ARCHITECTURE_CELL, challenge.TRAINING_CELL)}
    namespace: dict[str, t.Any] = {}
    exec(challenge.PREAMBLE + cells["architecture"] + "\n" + cells["training"], namespace)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {autoencoder.pick_device()}\n")
    print(f"{'track':14} {'train s':>8} {'public':>8} {'private':>8} {'score s':>8} {'in-process s':>13} {'ratio':>6}")
    for track in args.tracks:
        code_size, budget = autoencoder.parse_track(track)
        torch.manual_seed(0)
        encoder, decoder = namespace["Encoder"](code_size), namespace["Decoder"](code_size)
        started = time.perf_counter()
        namespace["train"](encoder, decoder, ImageBudget(budget, seed=1, device=autoencoder.pick_device()))
        trained = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            autoencoder.save_entry(encoder, decoder, track, tmp)
            timings: dict[str, list[float]] = {"sandboxed": [], "in-process": []}
            result = None
            for _ in range(args.rounds):
                for kind, ns in (("sandboxed", None), ("in-process", namespace)):
                    started = time.perf_counter()
                    result = challenge.score_challenge(submission(Path(tmp), cells, track, ns)).primary
                    timings[kind].append(time.perf_counter() - started)
            assert result is not None and result.stage == "scored", result
            sandboxed, local = min(timings["sandboxed"]), min(timings["in-process"])
            print(
                f"{track:14} {trained:8.1f} {result.public_cost:8.4f} {result.private_cost:8.4f} "
                f"{sandboxed:8.2f} {local:13.2f} {sandboxed / local:6.1f}"
            )


if __name__ == "__main__":
    main()
