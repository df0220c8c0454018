"""Trained weights of the demo cohort: shipped with the package, else made once and kept on disk.

The demo's challenge entries need trained networks; training them takes minutes, which nobody should wait
for to see grading.  So the weights of every trained entry of the demo cohort are shipped in
``reference_weights/`` beside this module (a few MB in all), each listed in ``MANIFEST.json`` with its
SHA-256, what it is, how long it trained, and with which torch.  A file is named by the hash of everything
that determines it (the notebook cells' sources and the settings), so a changed notebook no longer finds
its shipped file: it trains afresh into ``$MLPHYS_CACHE/demo-weights`` (default ``~/.cache/mlphys``), where
the file is kept for the next run, and ``python -m mlphys.demo.weights`` makes the shipped set anew from
today's notebooks (``grader_tests/test_demo_weights.py`` fails until it has).

``MLPHYS_DEMO_WEIGHTS=train`` ignores the shipped files (every weight trained from the notebooks' own cells,
as the slow test tier does); ``MLPHYS_DEMO_WEIGHTS=shipped`` refuses to train (a missing file is an error).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SHIPPED = Path(__file__).parent / "reference_weights"
MANIFEST = SHIPPED / "MANIFEST.json"


class NoShippedWeights(RuntimeError):
    """``MLPHYS_DEMO_WEIGHTS=shipped`` and a weight the demo needs is not shipped."""


def cache_dir() -> Path:
    return Path(os.environ.get("MLPHYS_CACHE", Path.home() / ".cache" / "mlphys")) / "demo-weights"


def weights_key(determined_by: Sequence[str]) -> str:
    return hashlib.sha256("\0".join(determined_by).encode()).hexdigest()[:24]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest() -> dict[str, dict[str, str | float | None]]:
    """The shipped files by name: ``sha256``, ``what``, ``train_seconds`` (None: trained in an earlier run, found
    in the cache), ``torch``, ``made``."""
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}


def shipped_file(name: str) -> Path | None:
    """The shipped file of this name if it is listed and its checksum matches, else None."""
    listed = manifest().get(name)
    path = SHIPPED / name
    if listed is None or not path.is_file() or sha256_of(path) != listed["sha256"]:
        return None
    return path


# Files made or found during this process, name -> (path, what, seconds of training or None): what
# ``python -m mlphys.demo.weights`` ships.
USED: dict[str, tuple[Path, str, float | None]] = {}


def cached_file(
    prefix: str, determined_by: Sequence[str], make: Callable[[Path], None], suffix: str = ".pt", *, what: str
) -> Path:
    """The trained file for ``determined_by``, named ``{prefix}{hash}{suffix}``: the shipped one, else the cached
    one, else made by ``make(path)`` (which writes ``path``) into the cache.  ``what`` says what it is.

    The cache's name also holds the torch version, since it decides what training computes.  The file appears
    atomically, so an interrupted run never leaves half a file behind under the final name.
    """
    import torch

    name = f"{prefix}{weights_key(determined_by)}{suffix}"
    source = os.environ.get("MLPHYS_DEMO_WEIGHTS", "")
    shipped = shipped_file(name) if source != "train" else None
    if shipped is not None:
        USED[name] = (shipped, what, None)
        return shipped
    if source == "shipped":
        raise NoShippedWeights(f"{what}: no shipped weights {name} (make them: python -m mlphys.demo.weights)")
    path = cache_dir() / f"{prefix}{weights_key([*determined_by, torch.__version__])}{suffix}"
    if path.exists():
        USED.setdefault(name, (path, what, None))
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=suffix)
    os.close(handle)
    try:
        started = time.perf_counter()
        make(Path(temporary))
        seconds = time.perf_counter() - started
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    USED[name] = (path, what, seconds)
    return path


def ship(course_root: Path) -> dict[str, dict[str, str | float | None]]:
    """Write every case of every assignment's cohort into a scratch course (training what is not cached),
    then replace ``reference_weights/`` by the trained files they used, with a new manifest."""
    from mlphys import assignments
    from mlphys.demo.cohort import cohort, write_cohort

    old = manifest()
    USED.clear()
    with tempfile.TemporaryDirectory(prefix="mlphys-ship-") as scratch:
        root = Path(scratch)
        shutil.copytree(course_root / "source", root / "source")
        shutil.copytree(course_root / "release", root / "release")
        for assignment in assignments.registry():
            write_cohort(root, cohort(root, assignment))
    import torch

    made = datetime.date.today().isoformat()
    entries: dict[str, dict[str, str | float | None]] = {}
    staging = Path(tempfile.mkdtemp(prefix=".reference_weights-", dir=SHIPPED.parent))
    staging.chmod(0o755)  # package data, readable by whoever runs the grader
    for name, (path, what, seconds) in sorted(USED.items()):
        shutil.copyfile(path, staging / name)
        kept = old.get(name, {})
        entries[name] = {
            "what": what,
            "sha256": sha256_of(staging / name),
            "train_seconds": round(seconds, 1) if seconds is not None else kept.get("train_seconds"),
            "torch": torch.__version__ if seconds is not None else kept.get("torch", torch.__version__),
            "made": made if seconds is not None else kept.get("made", made),
        }
    (staging / MANIFEST.name).write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(SHIPPED, ignore_errors=True)
    os.replace(staging, SHIPPED)
    return entries


def main() -> None:
    """``python -m mlphys.demo.weights [COURSE_ROOT]``: make the shipped weights anew."""
    import sys

    from mlphys.cli import demo_environment

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    demo_environment(root)
    entries = ship(root.resolve())
    total = sum((SHIPPED / name).stat().st_size for name in entries)
    for name, entry in entries.items():
        seconds = entry["train_seconds"]
        trained = f"{seconds:7.1f} s" if isinstance(seconds, float) else "(cached)"
        print(f"{name}  {trained:>9}  {entry['what']}")
    print(f"{len(entries)} files, {total / 2**20:.2f} MB in {SHIPPED}")


if __name__ == "__main__":
    # Run as the module the demo cases import, so that USED is the one they fill (not a copy in __main__).
    from mlphys.demo.weights import main as module_main

    module_main()
