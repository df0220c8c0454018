"""The MNIST loader: offline folders, the documented split of the test digits, checked downloads, binarisation."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from mlphys.course import mnist

SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"  # CI clones the repository with ../shared beside it


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file as MNIST's: magic 2049 (labels) or 2051 (images), big-endian sizes, uint8 data."""
    dims = np.array([2048 + array.ndim, *array.shape], dtype=">u4")
    return dims.tobytes() + array.astype(np.uint8).tobytes()


def write_fake_mnist(folder: Path, parts: dict[str, int], gz: bool = True) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    for part, n in parts.items():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for stem, array in ((f"{part}-images-idx3-ubyte", images), (f"{part}-labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(data) if gz else data)
        written[part] = images
    return written


def test_the_shared_test_digits_split_into_training_and_heldout_digits() -> None:
    data = mnist.load_mnist(SHARED_MNIST)
    assert data.origin == "test set split"
    assert data.train_images.shape == (8_000, 28, 28) and data.train_images.dtype == np.uint8
    assert data.heldout_images.shape == (2_000, 28, 28)
    assert data.train_labels.shape == (8_000,) and data.heldout_labels.shape == (2_000,)
    assert set(np.unique(data.heldout_labels)) == set(range(10))
    # No held-out digit is among the training digits.
    train_keys = {image.tobytes() for image in data.train_images}
    assert not any(image.tobytes() in train_keys for image in data.heldout_images)
    # The split is the documented, seeded one: the same every time.
    again = mnist.load_mnist(SHARED_MNIST)
    assert np.array_equal(again.heldout_images, data.heldout_images)


def test_the_environment_variable_names_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLPHYS_MNIST", str(SHARED_MNIST))
    monkeypatch.setenv("MLPHYS_CACHE", str(tmp_path / "cache"))  # must not be touched
    data = mnist.load_mnist()
    assert data.folder == SHARED_MNIST and len(data.heldout_images) == 2_000
    assert not (tmp_path / "cache").exists()


def test_a_folder_with_the_full_set_holds_out_the_test_digits(tmp_path: Path) -> None:
    written = write_fake_mnist(tmp_path, {"train": 30, "t10k": 12}, gz=False)
    data = mnist.load_mnist(tmp_path)
    assert data.origin == "full"
    assert np.array_equal(data.train_images, written["train"])
    assert np.array_equal(data.heldout_images, written["t10k"])


def test_truncated_or_foreign_files_are_refused(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, {"t10k": 5}, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        mnist.load_mnist(tmp_path)
    path.write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 100)
    with pytest.raises(ValueError, match="magic"):
        mnist.load_mnist(tmp_path)


def test_a_folder_whose_files_do_not_match_its_checksums_is_refused(tmp_path: Path) -> None:
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "SHA256SUMS"):
        (tmp_path / name).write_bytes((SHARED_MNIST / name).read_bytes())
    assert len(mnist.load_mnist(tmp_path).heldout_images) == 2_000
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())))  # the same digits, other bytes
    with pytest.raises(ValueError, match="does not match its checksum"):
        mnist.load_mnist(tmp_path)


def test_setup_says_where_the_digits_come_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLPHYS_MNIST", raising=False)
    assert mnist.main([str(SHARED_MNIST)]) == 0
    said = capsys.readouterr().out
    assert str(SHARED_MNIST) in said and "offline, checked against its SHA256SUMS" in said
    monkeypatch.setenv("MLPHYS_CACHE", str(tmp_path))  # an empty cache, and no network to fill it
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/",))
    assert mnist.main([str(tmp_path / "no-such-folder")]) == 1
    assert "06_boltzmann_mnist cannot be graded" in capsys.readouterr().err


def test_a_folder_without_digits_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(mnist.MnistNotFound, match="t10k-images"):
        mnist.load_mnist(tmp_path)


def test_downloads_are_kept_only_with_the_published_checksum(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = tmp_path / "server"
    write_fake_mnist(source, {"train": 20, "t10k": 10})
    served: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        served.append(url)
        return io.BytesIO((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(mnist.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.delenv("MLPHYS_MNIST", raising=False)
    monkeypatch.setenv("MLPHYS_CACHE", str(tmp_path / "cache"))
    # The fake files do not have the official checksums: nothing is kept, and the error says why.
    with pytest.raises(mnist.MnistNotFound, match="wrong checksum"):
        mnist.load_mnist()
    assert not any((tmp_path / "cache" / "mnist").glob("*.gz"))
    # With these files' checksums as the published ones, they are downloaded once, then read from the cache.
    checksums = {name: hashlib.md5((source / name).read_bytes()).hexdigest() for name in mnist.OFFICIAL_MD5}
    monkeypatch.setattr(mnist, "OFFICIAL_MD5", checksums)
    served.clear()
    data = mnist.load_mnist()
    assert data.origin == "full" and len(data.train_images) == 20 and len(served) == 4
    served.clear()
    assert len(mnist.load_mnist().heldout_images) == 10 and served == []


def test_stochastic_binarisation_is_seeded_and_keeps_the_grey_levels() -> None:
    images = np.repeat(np.array([0, 64, 128, 255], dtype=np.uint8), 196).reshape(1, 28, 28).repeat(2000, axis=0)
    binary = mnist.binarize(images, seed=3)
    assert binary.shape == (2000, 784) and binary.dtype == np.float32
    assert set(np.unique(binary)) == {0.0, 1.0}
    means = binary.reshape(2000, 4, 196).mean(axis=(0, 2))
    assert np.allclose(means, [0.0, 64 / 255, 128 / 255, 1.0], atol=0.01)
    assert np.array_equal(mnist.binarize(images, seed=3), binary)
    assert not np.array_equal(mnist.binarize(images, seed=4), binary)
    threshold = mnist.binarize(images[:1], method="threshold").reshape(4, 196)
    assert threshold[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
