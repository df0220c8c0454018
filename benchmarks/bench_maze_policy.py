"""The reference policy network of assignment 05: training time and mean return on fresh hard mazes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_maze_policy.py [--batches 600] [--save maze-policy.pt]

Runs the instructor notebook's own cells (imports, `policy_network`, `policy_training`) with one torch
thread, as the notebook does, trains `train_policy(make_policy(), batches)` and prints the wall-clock and
CPU seconds, the mean return of the last 100 training batches, and the mean return (with its standard
error) of the trained network on 1,000 fresh mazes of the really hard case (15 x 15, 10 chests,
40 steps, chests deleted), played by `rollout` with a fixed generator.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
import numpy as np
import torch

from mlphys.course.maze import HARD_CHESTS, HARD_SIZE, HARD_STEPS, MazeBatch, rollout, save_policy

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "source" / "05_maze_policy_gradient" / "maze_policy_gradient.ipynb"


def notebook_namespace() -> dict:
    """The notebook's first code cell (imports) and its network and training cells, executed."""
    cells = nbformat.read(NOTEBOOK, 4).cells
    code = [cell for cell in cells if cell.cell_type == "code"]
    by_id = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell.source for cell in code}
    namespace: dict = {}
    for source in (code[0].source, by_id["policy_network"], by_id["policy_training"]):
        exec(compile(source, str(NOTEBOOK), "exec"), namespace)
    return namespace


def mean_return(network: torch.nn.Module, episodes: int = 1000, seed: int = 2718) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    mazes = MazeBatch.random(episodes, HARD_SIZE, HARD_CHESTS, rng)

    def policy(batch: MazeBatch) -> np.ndarray:
        with torch.no_grad():
            return network(torch.as_tensor(batch.observations())).double().numpy()

    returns = rollout(mazes, policy, HARD_STEPS, rng).returns
    return float(returns.mean()), float(returns.std() / np.sqrt(episodes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=600)
    parser.add_argument("--save", help="save the trained weights to this file")
    args = parser.parse_args()
    namespace = notebook_namespace()  # sets torch to one thread, as the notebook does
    torch.manual_seed(0)
    network = namespace["make_policy"]()
    wall, cpu = time.perf_counter(), time.process_time()
    history = namespace["train_policy"](network, batches=args.batches)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    network.eval()
    mean, error = mean_return(network)
    print(f"trained {args.batches} batches of 64 in {wall:.0f} s wall-clock, {cpu:.0f} s CPU (one thread)")
    print(f"mean return of the last 100 training batches: {np.mean(history[-100:]):.2f}")
    print(f"mean return on 1,000 fresh hard mazes: {mean:.2f} ± {error:.2f}")
    if args.save:
        print(f"weights saved to {save_policy(network, args.save)}")


if __name__ == "__main__":
    main()
