"""06_boltzmann_mnist's reference RBMs on the board: the figure the grader publishes (exact for H25, the most
conservative of AIS, RAISE and the visited states' certain bound for H500), how long it takes on one core,
and what it is checked against: a long AIS run, and the optimistic figure of the old grader (AIS at 1,000
inverse temperatures from uniform hidden units); the same for issue 23's attack on the H500 reference (W
scaled by 1.5, hidden biases by 0.6).

    OMP_NUM_THREADS=1 MLPHYS_MNIST=... .venv/bin/python benchmarks/bench_rbm.py [--tracks H500 H25]
        [--long-betas 10000] [--secrets ml4physics-demo-secret secret-1]

The weights are the reference ``train_rbm`` of ``source/06_boltzmann_mnist`` with the notebook's SETTINGS, as
the demo trains and caches them (``mlphys.demo.weights``; "training, s" is 0 when they were cached); the
digits are the secret's.  Everything runs on one CPU thread.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from mlphys.assignments.boltzmann_mnist import scoring
from mlphys.assignments.boltzmann_mnist.ais import ais_log_partition, base_biases, hidden_base_biases
from mlphys.assignments.boltzmann_mnist.cases import TRAINING_CELL, reference_cell, reference_settings, trained_weights
from mlphys.assignments.boltzmann_mnist.exact import free_energy
from mlphys.demo.case import Materials

REPO = Path(__file__).resolve().parent.parent


def cpu_seconds(run: object) -> tuple[object, float, float]:
    """run(), with its wall and CPU seconds (CPU: what one core spends, whatever else loads the machine)."""
    before, start = os.times(), time.perf_counter()
    result = run()  # type: ignore[operator]
    after = os.times()
    return result, time.perf_counter() - start, after.user - before.user + after.system - before.system


def row(name: str, W: np.ndarray, a: np.ndarray, b: np.ndarray, secret: str, track: str, long_betas: int) -> None:
    digits = scoring.hidden_digits(secret)
    found, wall, cpu = cpu_seconds(lambda: scoring.log_likelihood(W, a, b, secret, salt=name, track=track))
    mean = float(np.mean(-free_energy(digits["public"], W, a, b)))
    base = base_biases(digits["base"])
    old = ais_log_partition(W, a, b, base=base, runs=100, betas=1_000, seed=1)
    hidden = hidden_base_biases(W, b, digits["base"][: scoring.HIDDEN_RATE_DIGITS])
    long, long_wall, _ = cpu_seconds(
        lambda: ais_log_partition(W, a, b, base=base, base_hidden=hidden, runs=100, betas=long_betas, seed=2)
    )
    if found.exact:
        estimates = "exact | | |"
    else:
        final = found.estimates[-1]
        bound = mean - max(e.visited for e in found.estimates)
        marked = f", marked ({len(found.estimates)} estimates)" * found.marked
        estimates = (
            f"annealed{marked} | {found.ais_public:.1f} | {found.raise_public:.1f} +- {final.raise_stderr:.2f} "
            f"| {bound:.1f}"
        )
    print(
        f"| {name} | {secret} | **{found.public:.1f}** | {found.private:.1f} | {estimates} | {cpu:.1f} ({wall:.1f}) "
        f"| {mean - long.value:.1f} ({mean - long.upper:.1f} .. {mean - long.lower:.1f}), {long_wall:.0f} s "
        f"| {mean - old.value:.1f} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", nargs="+", default=["H500", "H25"])
    parser.add_argument("--long-betas", type=int, default=10_000)
    parser.add_argument("--secrets", nargs="+", default=["ml4physics-demo-secret"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    materials = Materials(REPO, "06_boltzmann_mnist", "boltzmann_mnist")
    training, settings = reference_cell(materials, TRAINING_CELL), reference_settings(materials)
    print(f"load average {os.getloadavg()[0]:.1f}; torch threads {torch.get_num_threads()}")
    print(
        "| model | secret | board figure (public) | private | how | AIS | RAISE +- s.e. | certain bound (truth <=) "
        f"| CPU s (wall) | AIS {args.long_betas:,} betas (+-3 s.e.), wall | old grader's AIS |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for track in args.tracks:
        start = time.perf_counter()
        path = trained_weights(training, settings[track], track)
        trained = time.perf_counter() - start
        W, a, b = _load(path)
        name = f"{track} reference ({settings[track]}; training {trained:.0f} s)"
        for secret in args.secrets:
            row(name, W, a, b, secret, track, args.long_betas)
        if track == "H500":  # issue 23's attack: every parameter far inside the bound
            for secret in args.secrets:
                row("H500 reference, W x1.5, b x0.6", 1.5 * W, a, 0.6 * b, secret, track, args.long_betas)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    state = torch.load(path, map_location="cpu", weights_only=True)["rbm"]
    return tuple(state[name].double().numpy() for name in "Wab")  # type: ignore[return-value]


if __name__ == "__main__":
    main()
