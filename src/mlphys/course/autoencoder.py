"""The rules of the Grand Autoencoder Challenge, and the notebook's helpers for entering it.

A track is a bottleneck class and a training budget, written ``"MEDIUM/NORMAL"``:

* MEDIUM: the code (the narrowest layer) holds at most 9 numbers per image; HARD: at most 3.
* NORMAL: the network, freshly initialised, sees at most 30,000 training images; LONG: 100,000.

An entry is a pair of ``torch.nn.Module`` classes, ``Encoder(code_size)`` mapping images (batch, 27, 27)
to codes (batch, code_size) and ``Decoder(code_size)`` mapping codes back to images, and the trained
weights, saved with :func:`save_entry`.  The functions at the end of this module are what the grader
runs inside the sandboxes that score and retrain entries; they only build, load and call the
student's modules and hand back plain numpy data, which the grader validates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from mlphys.course.circles import IMAGE_SIZE, ImageBudget

CODE_LIMITS = {"MEDIUM": 9, "HARD": 3}
BUDGETS = {"NORMAL": 30_000, "LONG": 100_000}
TRACKS = tuple(f"{c}/{b}" for c in CODE_LIMITS for b in BUDGETS)
_TRACK = re.compile(r"^(MEDIUM|HARD)/(NORMAL|LONG)$")


def parse_track(track: str) -> tuple[int, int]:
    """(largest code size, training budget in images) of a track such as ``"MEDIUM/NORMAL"``."""
    match = _TRACK.match(track) if isinstance(track, str) else None
    if match is None:
        raise ValueError(f"{track!r} is not a track; choose one of {', '.join(TRACKS)}")
    return CODE_LIMITS[match.group(1)], BUDGETS[match.group(2)]


def weights_filename(track: str) -> str:
    """The file in the assignment folder that holds an entry's weights, e.g. autoencoder-medium-normal.pt."""
    parse_track(track)
    return "autoencoder-" + track.lower().replace("/", "-") + ".pt"


def pick_device() -> str:
    """The device to train on: "cuda" when a GPU is available, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def save_entry(encoder: Any, decoder: Any, track: str, folder: str | Path = ".") -> Path:
    """Save an entry's weights (plain tensors only) where the grader looks for them."""
    import torch

    path = Path(folder) / weights_filename(track)
    state = {
        "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "decoder": {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
    }
    torch.save(state, path)
    return path


def load_entry(encoder: Any, decoder: Any, track: str, folder: str | Path = ".") -> bool:
    """Load saved weights into ``encoder`` and ``decoder``; False if there are none yet."""
    import torch

    path = Path(folder) / weights_filename(track)
    if not path.exists():
        return False
    state = torch.load(path, map_location="cpu", weights_only=True)
    encoder.load_state_dict(state["encoder"])
    decoder.load_state_dict(state["decoder"])
    return True


def plot_reconstructions(originals: np.ndarray, reconstructions: np.ndarray, title: str | None = None):
    """Originals in the top row, their reconstructions below; returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    n = len(originals)
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.0), squeeze=False)
    for j in range(n):
        for row, images, label in ((0, originals, "original"), (1, reconstructions, "decoded")):
            ax = axes[row, j]
            ax.imshow(images[j], origin="lower", extent=(-1, 1, -1, 1), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---- run by the grader inside sandboxed kernels --------------------------------------------------


def _state_tensors(state: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch

    return {k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}


def _state_arrays(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _run_module(module_class: Any, code_size: int, state: dict[str, np.ndarray], inputs: np.ndarray) -> np.ndarray:
    """A freshly built ``module_class(code_size)`` with weights ``state``, applied to ``inputs``."""
    import torch

    module = module_class(code_size)
    module.load_state_dict(_state_tensors(state))
    module.eval()
    with torch.no_grad():
        return _as_numpy(module(torch.as_tensor(inputs, dtype=torch.float32)))


def run_encoder(encoder_class: Any, code_size: int, state: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """Codes of ``images`` from the student's encoder with weights ``state``."""
    return _run_module(encoder_class, code_size, state, images)


def run_decoder(decoder_class: Any, code_size: int, state: dict[str, np.ndarray], codes: np.ndarray) -> np.ndarray:
    """Images decoded from ``codes`` by the student's decoder with weights ``state``."""
    return _run_module(decoder_class, code_size, state, codes)


def retrain(encoder_class: Any, decoder_class: Any, train: Any, code_size: int, budget: int, seed: int) -> dict:
    """Train a fresh entry with the student's own ``train`` on exactly ``budget`` new images."""
    import torch

    torch.manual_seed(seed)
    encoder, decoder = encoder_class(code_size), decoder_class(code_size)
    images = ImageBudget(budget, seed=seed, device=pick_device())
    train(encoder, decoder, images)
    return {"encoder": _state_arrays(encoder), "decoder": _state_arrays(decoder), "images_used": images.used}


__all__ = [
    "BUDGETS",
    "CODE_LIMITS",
    "IMAGE_SIZE",
    "TRACKS",
    "load_entry",
    "parse_track",
    "pick_device",
    "plot_reconstructions",
    "save_entry",
    "weights_filename",
]
