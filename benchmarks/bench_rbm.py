"""06_boltzmann_mnist's reference RBMs: training time, and the held-out log-likelihood as the grader
estimates it (AIS with the grading settings) and with a long AIS run (Salakhutdinov and Murray's
14,500 inverse temperatures), each with its error bars.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_rbm.py [--tracks H500 H25] [--long-betas 14500]

Training runs the reference ``train_rbm`` of ``source/06_boltzmann_mnist`` with the notebook's SETTINGS, on
the CPU, on the digits ``load_mnist()`` finds (set MLPHYS_MNIST); scores use the demo secret's digits.
"""

from __future__ import annotations

import argparse
import time
import typing as t
from pathlib import Path

import numpy as np
import torch

from mlphys.assignments.boltzmann_mnist import scoring
from mlphys.assignments.boltzmann_mnist.ais import ais_log_partition, base_biases
from mlphys.assignments.boltzmann_mnist.cases import PREAMBLE, TRAINING_CELL, reference_cell, reference_settings
from mlphys.assignments.boltzmann_mnist.exact import free_energy
from mlphys.course.mnist import load_mnist
from mlphys.demo.case import Materials

REPO = Path(__file__).resolve().parent.parent
SECRET = "ml4physics-demo-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", nargs="+", default=["H500", "H25"])
    parser.add_argument("--long-betas", type=int, default=14_500)
    args = parser.parse_args()
    materials = Materials(REPO, "06_boltzmann_mnist", "boltzmann_mnist")
    namespace: dict[str, t.Any] = {}
    exec(PREAMBLE + reference_cell(materials, TRAINING_CELL), namespace)
    settings = reference_settings(materials)
    data = load_mnist()
    digits = scoring.hidden_digits(SECRET)
    print(f"digits: {data.origin}, {len(data.train_images):,} for training; torch threads {torch.get_num_threads()}")
    print("| track | settings | training, s | grader's AIS: public LL | private LL | log Z +- s.e. | AIS, s "
          "| long AIS: public LL | log Z +- s.e. | AIS, s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for track in args.tracks:
        start = time.perf_counter()
        W, a, b, _ = namespace["train_rbm"](data.train_images, **settings[track])
        trained = time.perf_counter() - start
        W, a, b = (x.double().numpy() for x in (W, a, b))
        start = time.perf_counter()
        entry = scoring.log_likelihood(W, a, b, SECRET)
        graded = time.perf_counter() - start
        start = time.perf_counter()
        long = ais_log_partition(W, a, b, base=base_biases(digits["base"]), runs=100, betas=args.long_betas, seed=1)
        long_s = time.perf_counter() - start
        long_ll = float(np.mean(-free_energy(digits["public"], W, a, b))) - long.value
        print(f"| {track} | {settings[track]} | {trained:.0f} | **{entry.public:.1f}** | {entry.private:.1f} "
              f"| {entry.log_z:.1f} +- {entry.log_z_stderr:.2f} | {graded:.0f} | {long_ll:.1f} "
              f"| {long.value:.1f} +- {long.stderr:.2f} | {long_s:.0f} |", flush=True)


if __name__ == "__main__":
    main()
