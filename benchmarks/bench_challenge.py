"""The Grand Autoencoder Challenge's reference entry: cost and training time on every track, and what
scoring one entry costs, sandboxed (two fresh kernels) against a baseline that computes the same cost in
this process with the same modules (what scoring would cost without sandboxes).

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

from mlphys.assignments.autoencoder_challenge import challenge
from mlphys.assignments.autoencoder_challenge.cases import reference_cell
from mlphys.cli import DEMO_SECRET
from mlphys.course import autoencoder
from mlphys.course.circles import ImageBudget
from mlphys.demo.case import Materials
from mlphys.grading.challenge import score_challenge
from mlphys.grading.execute import sandbox_problem
from mlphys.grading.isolated import Isolation
from mlphys.grading.submission import MISSING, Submission

REPO = Path(__file__).resolve().parent.parent


def submission(folder: Path, cells: dict[str, str], track: str) -> Submission:
    values = {"TRACKS": [track], "SHOW_MY_NAME": False}
    entry = Submission(
        files=folder, cells=cells, isolation=Isolation(use_bwrap=sandbox_problem() is None), secret=DEMO_SECRET
    )
    entry.lookup = lambda name: values.get(name, MISSING)
    return entry


def in_process_cost(encoder: t.Any, decoder: t.Any) -> float:
    """The baseline: the same public cost, computed here (codes rounded to half precision as when scoring)."""
    images = torch.as_tensor(challenge.hidden_images(DEMO_SECRET)["public"], dtype=torch.float32)
    with torch.no_grad():
        codes = encoder.eval()(images).half().float()
        return float(((decoder.eval()(codes) - images) ** 2).mean())


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
    print(f"{'track':14} {'train s':>8} {'public':>8} {'private':>8} {'score s':>8} {'baseline s':>11} {'ratio':>6}")
    for track in args.tracks:
        code_size, budget = autoencoder.parse_track(track)
        torch.manual_seed(0)
        encoder, decoder = namespace["Encoder"](code_size), namespace["Decoder"](code_size)
        started = time.perf_counter()
        namespace["train"](encoder, decoder, ImageBudget(budget, seed=1, device=autoencoder.pick_device()))
        trained = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            autoencoder.save_entry(encoder, decoder, track, tmp)
            timings: dict[str, list[float]] = {"sandboxed": [], "baseline": []}
            result = None
            for _ in range(args.rounds):
                started = time.perf_counter()
                result = score_challenge(submission(Path(tmp), cells, track), challenge.CHALLENGE).primary
                timings["sandboxed"].append(time.perf_counter() - started)
                started = time.perf_counter()
                baseline = in_process_cost(encoder, decoder)
                timings["baseline"].append(time.perf_counter() - started)
            assert result is not None and result.stage == "scored", result
            assert abs(baseline - result.public_cost) < 1e-3 * max(baseline, 1e-3), (baseline, result.public_cost)
            sandboxed, local = min(timings["sandboxed"]), min(timings["baseline"])
            print(
                f"{track:14} {trained:8.1f} {result.public_cost:8.4f} {result.private_cost:8.4f} "
                f"{sandboxed:8.2f} {local:11.2f} {sandboxed / local:6.1f}"
            )


if __name__ == "__main__":
    main()
