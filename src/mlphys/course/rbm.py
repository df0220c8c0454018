"""The challenge entry of assignment 06: tracks, and the weights file an RBM is submitted in.

An entry is just the RBM's parameters: weights W of shape (784, n_hidden), visible biases a (784,) and
hidden biases b (n_hidden,). They are saved as plain tensors, ``{"rbm": {"W": ..., "a": ..., "b": ...}}``,
in ``rbm-<track>.pt`` next to the notebook; the grader loads them with ``torch.load(weights_only=True)``
and runs no code of the submission to score them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

N_VISIBLE = 784
TRACKS = {"H25": 25, "H500": 500}  # track -> the most hidden units it allows


def max_hidden(track: str) -> int:
    """The number of hidden units a track allows at most (ValueError for an unknown track)."""
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; the tracks are {', '.join(TRACKS)}")
    return TRACKS[track]


def weights_filename(track: str) -> str:
    max_hidden(track)
    return f"rbm-{track.lower()}.pt"


def pick_device() -> str:
    """"cuda" if torch sees a GPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def save_rbm(W: Any, a: Any, b: Any, track: str, folder: str | Path = ".") -> Path:
    """Save the RBM (numpy arrays or torch tensors) for ``track``; returns the file's path."""
    import torch

    W, a, b = (np.ascontiguousarray(_numpy(x), dtype=np.float32) for x in (W, a, b))
    if W.shape != (N_VISIBLE, b.shape[0]) or a.shape != (N_VISIBLE,) or b.ndim != 1:
        raise ValueError(f"shapes W {W.shape}, a {a.shape}, b {b.shape}; expected (784, n), (784,), (n,)")
    if b.shape[0] > max_hidden(track):
        raise ValueError(f"{b.shape[0]} hidden units are too many for {track} (at most {max_hidden(track)})")
    path = Path(folder) / weights_filename(track)
    torch.save({"rbm": {name: torch.from_numpy(x) for name, x in zip("Wab", (W, a, b), strict=True)}}, path)
    return path


def load_rbm(track: str, folder: str | Path = ".") -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(W, a, b) as float64 numpy arrays from the track's weights file, or None if there is no file."""
    import torch

    path = Path(folder) / weights_filename(track)
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)["rbm"]
    return tuple(state[name].double().numpy() for name in "Wab")  # type: ignore[return-value]

# Held-out log-likelihood (nats per digit) above which an entry earns the points of the "pass" and the
# "good" test cells, per track: the grader's figure on its public held-out digits, exact for H25 and a
# conservative estimate for H500.  The notebook's settings reach about -140 to -148 (H25, exact) and -129 to
# -137 (H500) on the 2,000 held-out digits of the test-set split, depending on the secret's digits.
PASS_BANDS = {"H25": {"pass": -175.0, "good": -155.0}, "H500": {"pass": -160.0, "good": -145.0}}
