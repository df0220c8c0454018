"""MNIST digits for the course notebooks: found on disk or downloaded once, split, and binarised.

Where the files come from, in this order:

1. a folder given as ``path`` (or the environment variable ``MLPHYS_MNIST``): it is read, never
   written, and nothing is downloaded; where it has a ``SHA256SUMS`` file, the files it lists must match it;
2. otherwise the cache folder ``$MLPHYS_CACHE/mnist`` (default ``~/.cache/mlphys/mnist``), where the
   four official files are downloaded once, if they are not there yet, and kept only if their MD5
   checksums are the published ones (those torchvision checks too).

A folder holds either the full set (``train-*`` and ``t10k-*``, gzipped or not) or the 10,000 test
digits alone (``t10k-*``, as on machines without internet, e.g. CI). With the full set, the 60,000
training digits are for training and the 10,000 test digits are held out. With the test digits alone,
a random permutation with the fixed seed :data:`SPLIT_SEED` takes 8,000 of them for training and holds
out the other 2,000 (:func:`split_test_set`). Either way, nobody trains on the held-out digits.

Binarisation (:func:`binarize`) is stochastic, as in the literature on RBMs for MNIST (Salakhutdinov
and Murray 2008): pixel i becomes 1 with probability (grey value)/255, with a seeded generator. A
threshold at 1/2 is available as the alternative (``method="threshold"``).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

IMAGE_SIZE = 28
SPLIT_SEED = 2008  # the permutation that splits the test digits when they are all there is
TRAIN_FROM_TEST = 8_000  # of the 10,000 test digits, this many are for training in that case

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
# MD5 of the official gzipped files (as published with torchvision's MNIST dataset).
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_IMAGES = "{}-images-idx3-ubyte"
_LABELS = "{}-labels-idx1-ubyte"


class MnistNotFound(FileNotFoundError):
    """No MNIST files where they were looked for, and none could be downloaded."""


@dataclasses.dataclass(frozen=True)
class Mnist:
    """Digits for training and held-out digits, as grey values (uint8, 0..255) of shape (n, 28, 28).

    ``origin`` says where they came from: ``"full"`` (60,000 training and 10,000 test digits) or
    ``"test set split"`` (the 10,000 test digits split 8,000 / 2,000 with :data:`SPLIT_SEED`).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    heldout_images: np.ndarray
    heldout_labels: np.ndarray
    origin: str
    folder: Path


def cache_folder() -> Path:
    return Path(os.environ.get("MLPHYS_CACHE", Path.home() / ".cache" / "mlphys")) / "mnist"


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_idx(path: Path, magic: int, count: int | None = None) -> np.ndarray:
    """An IDX file (images: magic 2051, labels: 2049), checked against its own header."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    dims = magic - 2048
    header = np.frombuffer(raw[: 4 + 4 * dims], dtype=">u4")
    if int(header[0]) != magic:
        raise ValueError(f"{path} is not an MNIST IDX file (magic number {int(header[0])}, expected {magic})")
    shape = tuple(int(d) for d in header[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)) or (count is not None and shape[0] != count):
        raise ValueError(f"{path} is truncated or not the expected MNIST file (header says {shape})")
    return data.reshape(shape).copy()


def _read_pair(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray] | None:
    images_path, labels_path = _find(folder, _IMAGES.format(part)), _find(folder, _LABELS.format(part))
    if images_path is None or labels_path is None:
        return None
    images = _read_idx(images_path, 2051)
    labels = _read_idx(labels_path, 2049, count=len(images))
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{images_path} holds images of shape {images.shape[1:]}, not 28 x 28")
    return images, labels


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def download(folder: Path | None = None) -> Path:
    """Download the four official files into ``folder`` (default: the cache) unless they are there.

    Each file is kept only if its MD5 checksum is the published one; returns the folder.
    """
    folder = Path(folder) if folder is not None else cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in OFFICIAL_MD5.items():
        target = folder / name
        if target.is_file() and _md5(target) == md5:
            continue
        errors = []
        for mirror in MIRRORS:
            partial = target.with_suffix(".part")
            try:
                with urllib.request.urlopen(mirror + name, timeout=60) as response:
                    partial.write_bytes(response.read())
            except OSError as exc:
                errors.append(f"{mirror}: {exc}")
                continue
            if _md5(partial) != md5:
                partial.unlink()
                errors.append(f"{mirror}: wrong checksum")
                continue
            partial.replace(target)
            break
        else:
            raise MnistNotFound(f"could not download {name}: " + "; ".join(errors))
    return folder


def split_test_set(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """The 10,000 test digits as (train_images, train_labels, heldout_images, heldout_labels).

    A permutation drawn with :data:`SPLIT_SEED` puts its first :data:`TRAIN_FROM_TEST` digits into
    training; the rest are held out. (The test set's first half was written by other people than its
    second half, so a contiguous split would differ in style.)
    """
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    train, heldout = np.sort(order[:TRAIN_FROM_TEST]), np.sort(order[TRAIN_FROM_TEST:])
    return images[train], labels[train], images[heldout], labels[heldout]


def verify_sums(folder: Path) -> None:
    """Check the files a folder's ``SHA256SUMS`` lists (``sha256sum``'s format) against it, if it has one."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        path = folder / name.lstrip("*")
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise ValueError(f"{path} does not match its checksum in {sums}: a damaged or different file")


def load_mnist(path: str | Path | None = None, *, allow_download: bool = True) -> Mnist:
    """The MNIST digits, split into training and held-out digits (see the module's docstring).

    ``path`` (or ``$MLPHYS_MNIST``) names a folder to read; without one, the cache is used and filled
    from the internet if need be (unless ``allow_download`` is False).
    """
    given = path if path is not None else os.environ.get("MLPHYS_MNIST")
    if given:
        folder = Path(given).expanduser()
    else:
        folder = cache_folder()
        if allow_download and _read_pair(folder, "train") is None:
            try:
                download(folder)
            except MnistNotFound as exc:
                if _read_pair(folder, "t10k") is None:
                    raise MnistNotFound(
                        f"{exc}. Without internet, put the MNIST files (at least t10k-images-idx3-ubyte.gz "
                        "and t10k-labels-idx1-ubyte.gz) in a folder and pass it as path= or set MLPHYS_MNIST."
                    ) from None
    verify_sums(folder)
    test = _read_pair(folder, "t10k")
    if test is None:
        names = "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"
        raise MnistNotFound(f"no MNIST test files ({names}) in {folder}")
    train = _read_pair(folder, "train")
    if train is not None:
        return Mnist(train[0], train[1], test[0], test[1], "full", folder)
    return Mnist(*split_test_set(*test), "test set split", folder)


def binarize(images: np.ndarray, seed: int | np.random.Generator = 0, method: str = "stochastic") -> np.ndarray:
    """Binary digits as float32 vectors of shape (n, 784).

    ``"stochastic"``: pixel = 1 with probability grey/255, drawn with ``np.random.default_rng(seed)``
    (so the same seed gives the same digits). ``"threshold"``: pixel = 1 where grey > 127.
    """
    grey = np.asarray(images).reshape(len(images), -1)
    if method == "threshold":
        return (grey > 127).astype(np.float32)
    if method != "stochastic":
        raise ValueError(f"method should be 'stochastic' or 'threshold', not {method!r}")
    rng = np.random.default_rng(seed)
    return (rng.random(grey.shape) < grey / 255.0).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """``python -m mlphys.course.mnist [FOLDER]``: make MNIST ready and say where it comes from.

    FOLDER (or ``$MLPHYS_MNIST``), where it holds the files, is used offline (checked against its
    ``SHA256SUMS``); else the full set is downloaded once into the cache, each file checked against its
    published MD5.  Exit status 1 where neither works.
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    given = args[0] if args and _find(Path(args[0]).expanduser(), _IMAGES.format("t10k")) else None
    try:
        data = load_mnist(given)
    except (MnistNotFound, ValueError) as exc:
        print(f"MNIST: not available ({exc}); 06_boltzmann_mnist cannot be graded until it is", file=sys.stderr)
        return 1
    how = "offline, checked against its SHA256SUMS" if (data.folder / "SHA256SUMS").is_file() else "offline"
    if data.folder == cache_folder() and not os.environ.get("MLPHYS_MNIST") and given is None:
        how = "downloaded once, each file checked against its published MD5"
    print(
        f"MNIST: {len(data.train_images):,} training and {len(data.heldout_images):,} held-out digits "
        f"({data.origin}) from {data.folder} ({how})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
