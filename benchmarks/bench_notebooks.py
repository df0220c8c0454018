"""How long each instructor notebook takes to run top to bottom (reference solution, self-checks,
hidden tests, plots), as a student's laptop would run the solved notebook.

    .venv/bin/python benchmarks/bench_notebooks.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent


def run_once(path: Path) -> float:
    nb = nbformat.read(path, 4)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        NotebookClient(nb, timeout=600, resources={"metadata": {"path": tmp}}).execute()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'notebook':40} {'best s':>7} {'median s':>9}")
    for path in sorted((REPO / "source").rglob("*.ipynb")):
        times = sorted(run_once(path) for _ in range(args.rounds))
        print(f"{path.relative_to(REPO / 'source')!s:40} {times[0]:7.2f} {times[len(times) // 2]:9.2f}")


if __name__ == "__main__":
    main()
