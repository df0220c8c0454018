"""Simulated submissions for 03_autoencoder_challenge: honest entries of several strengths, and every way
of cheating or failing that the hidden tests must catch.

Points (6 autograded): ``test_codes`` 2 (weights load, at most k finite numbers per image),
``test_images`` 1 (the decoder gives finite 27 x 27 images from the rounded codes alone),
``test_cost_pass`` 2 (public cost < 0.05) and ``test_cost_competitive`` 1 (public cost < 0.02).

Each entry's weights are made here, by running the submission's own architecture and training cells
(in this trusted process: this is the demo's code), and cached under ``~/.cache/mlphys`` by the
hash of what determines them, so a second demo run or test session does not train again.
"""

from __future__ import annotations

import os
import shutil
import typing as t
from pathlib import Path

import nbformat

from mlphys.assignments.autoencoder_challenge.challenge import ARCHITECTURE_CELL, PREAMBLE, TRAINING_CELL
from mlphys.course import autoencoder
from mlphys.demo.case import Case, Materials, reference_cell, write_notebook
from mlphys.demo.weights import cached_file

PICKLE_MARKER = "/tmp/mlphys-demo-pickle-ran"  # the pickled payload would create this file

# A linear autoencoder (PCA-like): honest, but weaker than a convolutional one.
LINEAR = """
class Encoder(nn.Module):
    def __init__(self, code_size):
        super().__init__()
        self.linear = nn.Linear(27 * 27, code_size)

    def forward(self, x):
        return self.linear(x.reshape(len(x), -1))


class Decoder(nn.Module):
    def __init__(self, code_size):
        super().__init__()
        self.linear = nn.Linear(code_size, 27 * 27)

    def forward(self, z):
        return self.linear(z).reshape(len(z), 27, 27)
"""

# No bottleneck at all: the "code" is the image.
IDENTITY = """
class Encoder(nn.Module):
    def __init__(self, code_size):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.scale * x.reshape(len(x), -1)


class Decoder(nn.Module):
    def __init__(self, code_size):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, z):
        return self.scale * z.reshape(len(z), 27, 27)
"""

# Image bits packed into float64 mantissas: 9 numbers of 52 bits each carry 468 pixels.
PACKED = """
BITS = 52

class Encoder(nn.Module):
    def __init__(self, code_size):
        super().__init__()
        self.code_size = code_size

    def forward(self, x):
        flat = x.reshape(len(x), -1).double()[:, : self.code_size * BITS]
        weights = 2.0 ** -torch.arange(1, BITS + 1, dtype=torch.float64)
        return (flat.reshape(len(x), self.code_size, BITS) * weights).sum(-1)


class Decoder(nn.Module):
    def __init__(self, code_size):
        super().__init__()
        self.code_size = code_size

    def forward(self, z):
        z = z.double().clone()
        bits = []
        for _ in range(BITS):
            z = z * 2
            bit = (z >= 1).double()
            bits.append(bit)
            z = z - bit
        flat = torch.stack(bits, -1).reshape(len(z), -1)
        image = torch.zeros(len(z), 27 * 27, dtype=torch.float64)
        image[:, : flat.shape[1]] = flat
        return image.reshape(len(z), 27, 27)
"""

# The encoder leaves the images in files and module state for the decoder to pick up.
LEAKY = """
import os

class Encoder(nn.Module):
    def __init__(self, code_size):
        super().__init__()
        self.code_size = code_size

    def forward(self, x):
        np.save("/tmp/leak.npy", x.numpy())
        np.save(os.path.expanduser("~/leak.npy"), x.numpy())
        torch._leaked_images = x
        return torch.zeros(len(x), self.code_size)


class Decoder(nn.Module):
    def __init__(self, code_size):
        super().__init__()

    def forward(self, z):
        if hasattr(torch, "_leaked_images"):
            return torch._leaked_images
        for path in ("/tmp/leak.npy", os.path.expanduser("~/leak.npy")):
            if os.path.exists(path):
                return torch.as_tensor(np.load(path))
        raise FileNotFoundError("the encoder's images are gone")
"""


# One number more than the track allows.
WIDER_ENCODER = """

class _WideEncoder(Encoder):
    def __init__(self, code_size):
        super().__init__(code_size + 1)


Encoder = _WideEncoder
"""


SELF_DRAWN_TRAIN = """


def train(encoder, decoder, images, batch_size=32, lr=3e-3):
    from mlphys.course.circles import ImageBudget

    costs = _train_on(encoder, decoder, images, batch_size, lr)
    more = ImageBudget(70_000, seed=4242, device=images.device)  # not from the budget
    return costs + _train_on(encoder, decoder, more, batch_size, lr)
"""


def _decorated(architecture: str, decoder_tail: str) -> str:
    """The reference architecture with the decoder's output replaced by ``decoder_tail(out)``."""
    return (
        architecture
        + f"""

class _BrokenDecoder(Decoder):
    def forward(self, z):
        out = super().forward(z)
        return {decoder_tail}


Decoder = _BrokenDecoder
"""
    )


def trained_weights(architecture: str, training: str, track: str, images: int, cells: str = "the given cells") -> Path:
    """Weights of the architecture trained with ``training`` on ``images`` images, cached; ``cells`` says whose.

    The track matters only through its code size: the budget is ``images``, whatever the track says.
    """
    import torch

    code_size, _ = autoencoder.parse_track(track)

    def make(path: Path) -> None:
        from mlphys.course.circles import ImageBudget

        namespace: dict[str, t.Any] = {}
        exec(PREAMBLE + architecture + "\n" + training, namespace)
        torch.manual_seed(0)
        encoder, decoder = namespace["Encoder"](code_size), namespace["Decoder"](code_size)
        namespace["train"](encoder, decoder, ImageBudget(images, seed=1))
        os.replace(autoencoder.save_entry(encoder, decoder, track, path.parent), path)

    what = f"03: an autoencoder with a code of {code_size} trained on {images:,} images by {cells}"
    return cached_file("ae-", [architecture, training, str(code_size), str(images)], make, what=what)


def untrained_weights(folder: Path, track: str, architecture: str) -> None:
    """Freshly initialised weights of the architecture (seed 0), for entries that fail before training matters."""
    import torch

    namespace: dict[str, t.Any] = {}
    exec(PREAMBLE + architecture, namespace)
    code_size, _ = autoencoder.parse_track(track)
    torch.manual_seed(0)
    autoencoder.save_entry(namespace["Encoder"](code_size), namespace["Decoder"](code_size), track, folder)


def _set_entry(nb: nbformat.NotebookNode, tracks: list[str], show_name: bool) -> None:
    """Enter ``tracks`` in the notebook's "Your entry" cell."""
    for cell in nb.cells:
        lines = cell.source.splitlines()
        if cell.cell_type == "code" and any(line.startswith("TRACKS =") for line in lines):
            values = {"TRACKS =": f"TRACKS = {tracks!r}", "SHOW_MY_NAME =": f"SHOW_MY_NAME = {show_name!r}"}
            cell.source = "\n".join(next((v for k, v in values.items() if line.startswith(k)), line) for line in lines)
            return
    raise KeyError("no TRACKS cell in the notebook")


class PicklePayload:
    """Pickled code: unpickling it would run a shell command."""

    def __reduce__(self) -> tuple[t.Any, ...]:
        return (os.system, (f"touch {PICKLE_MARKER}",))


# The quick demo's cases: one board (MEDIUM/NORMAL) with an undertrained network, codes that smuggle bits, and
# an entry trained beyond its budget that the retraining check flags.
QUICK = ("ref_solution", "blank_release", "undertrained", "packed_codes", "over_budget")


def cases(materials: Materials) -> list[Case]:
    a = materials.assignment
    points = materials.test_points()
    total = sum(points.values())
    codes, images, competitive = (
        points["test_codes"],
        points["test_images"],
        points["test_cost_competitive"],
    )
    architecture = reference_cell(materials, ARCHITECTURE_CELL)
    training = reference_cell(materials, TRAINING_CELL)
    reference = {ARCHITECTURE_CELL: architecture, TRAINING_CELL: training}
    # Spends the budget, then trains on as many circles again as LONG allows, drawn by itself.
    self_drawn = training.replace("def train(", "def _train_on(", 1) + SELF_DRAWN_TRAIN

    def whose(arch: str, train: str) -> str:
        """Whose cells train an entry, for the shipped weights' manifest."""
        if train == self_drawn:
            return "a train that also draws circles of its own"
        if arch == LINEAR:
            return "a linear autoencoder"
        return "the reference cells" if arch == architecture else "other cells"

    def entry(
        tracks: list[str],
        arch: str = architecture,
        train_images: dict[str, int] | None = None,
        weights: t.Callable[[Path, str, str], None] | None = None,
        show_name: bool = False,
        train: str = training,
    ) -> t.Callable[[Path, Materials], None]:
        """A submission whose architecture cell is ``arch``, whose training cell is ``train``, and whose weights
        come from ``weights(directory, track, arch)``, or else from training ``arch`` with ``train``."""

        def write(directory: Path, m: Materials) -> None:
            changed = {k: v for k, v in ((ARCHITECTURE_CELL, arch), (TRAINING_CELL, train)) if v != reference[k]}
            nb = m.with_solutions(changed) if changed else m.reference()
            _set_entry(nb, tracks, show_name)
            write_notebook(nb, directory, m.notebook)
            for track in tracks:
                if weights is not None:
                    weights(directory, track, arch)
                    continue
                budget = (train_images or {}).get(track, autoencoder.parse_track(track)[1])
                source = trained_weights(arch, train, track, budget, cells=whose(arch, train))
                shutil.copyfile(source, directory / autoencoder.weights_filename(track))

        return write

    def huge(directory: Path, track: str, arch: str) -> None:
        import torch

        untrained_weights(directory, track, arch)
        path = directory / autoencoder.weights_filename(track)
        state = torch.load(path, weights_only=True)
        state["encoder"]["padding"] = torch.zeros(6_000_000)
        torch.save(state, path)

    def pickled(directory: Path, track: str, arch: str) -> None:
        import torch

        # torch.save's own format (a zip holding a pickle): what torch.load would unpickle.
        torch.save({"encoder": PicklePayload(), "decoder": {}}, directory / autoencoder.weights_filename(track))

    def blank(directory: Path, m: Materials) -> None:
        write_notebook(m.blank(), directory, m.notebook)

    medium = ["MEDIUM/NORMAL"]
    wide = architecture + WIDER_ENCODER
    rows: list[tuple[str, str, str, t.Callable[[Path, Materials], None], float]] = [
        ("ref_solution", "reference", "the reference network, MEDIUM/NORMAL", entry(medium), total),
        ("blank_release", "blank", "the release notebook, submitted unchanged", blank, 0.0),
        (
            "hard_entrant",
            "honest",
            "the reference network with a code of 3 (HARD/NORMAL)",
            entry(["HARD/NORMAL"]),
            total,
        ),
        (
            "long_entrant",
            "honest",
            "the reference network on the LONG budget, showing their name",
            entry(["MEDIUM/LONG"], show_name=True),
            total,
        ),
        (
            "linear_net",
            "honest",
            "a linear autoencoder: passes, not competitive",
            entry(medium, arch=LINEAR),
            total - competitive,
        ),
        (
            "undertrained",
            "mistake",
            "the reference network trained on 2,000 images only",
            entry(medium, train_images={"MEDIUM/NORMAL": 2_000}),
            codes + images,
        ),
        (
            "identity_net",
            "attack",
            "no bottleneck: the code is the whole image",
            entry(medium, IDENTITY, weights=untrained_weights),
            0.0,
        ),
        (
            "code_of_ten",
            "mistake",
            "a code of 10 numbers entered for MEDIUM",
            entry(medium, wide, weights=untrained_weights),
            0.0,
        ),
        (
            "packed_codes",
            "attack",
            "image bits packed into float64 mantissas",
            entry(medium, PACKED, weights=untrained_weights),
            codes + images,
        ),
        (
            "leaky_decoder",
            "attack",
            "the decoder reads what the encoder left behind",
            entry(medium, LEAKY, weights=untrained_weights),
            codes,
        ),
        (
            "nan_outputs",
            "mistake",
            "the decoder's output is NaN",
            entry(medium, _decorated(architecture, "out * float('nan')"), weights=untrained_weights),
            codes,
        ),
        (
            "wrong_shape",
            "mistake",
            "the decoder returns flat vectors of 729 pixels",
            entry(medium, _decorated(architecture, "out.reshape(len(out), -1)"), weights=untrained_weights),
            codes,
        ),
        ("huge_weights", "attack", "a weights file of 24 MB", entry(medium, weights=huge), 0.0),
        ("pickled_code", "attack", "a weights file that carries pickled code", entry(medium, weights=pickled), 0.0),
        (
            "over_budget",
            "attack",
            "weights trained on the LONG budget, entered for NORMAL (caught by retraining)",
            entry(medium, train_images={"MEDIUM/NORMAL": autoencoder.BUDGETS["LONG"]}),
            total,
        ),
        (
            "self_drawn",
            "attack",
            "a train that spends the budget, then trains on circles it draws itself (caught by retraining)",
            entry(medium, train=self_drawn),
            total,
        ),
    ]
    flagged = {"over_budget", "self_drawn"}
    return [
        Case(student, a, kind, text, write, expected, flagged_by_retraining=student in flagged, quick=student in QUICK)
        for student, kind, text, write, expected in rows
    ]
