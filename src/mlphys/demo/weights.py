"""Trained weights of the demo cohort, made once in the trusted demo process and kept on disk.

Training an entry takes from seconds to minutes; a second demo run or test session should not train it
again.  A file is kept under ``$MLPHYS_CACHE/demo-weights`` (default ``~/.cache/mlphys``), named by the
hash of everything that determines it (the cells' sources, the settings, the torch version), so a changed
notebook trains afresh and an unchanged one never does.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("MLPHYS_CACHE", Path.home() / ".cache" / "mlphys")) / "demo-weights"


def cached_file(prefix: str, determined_by: Sequence[str], make: Callable[[Path], None], suffix: str = ".pt") -> Path:
    """The cached file for ``determined_by``, named ``{prefix}{hash}{suffix}``; made by ``make(path)`` (which
    writes ``path``) if there is none.

    The torch version is part of the key, since it decides what training computes.  The file appears
    atomically, so an interrupted run never leaves half a file behind under the final name.
    """
    import torch

    key = hashlib.sha256("\0".join([*determined_by, torch.__version__]).encode()).hexdigest()[:24]
    path = cache_dir() / f"{prefix}{key}{suffix}"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{prefix}{key}-", suffix=suffix)
    os.close(handle)
    try:
        make(Path(temporary))
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path
