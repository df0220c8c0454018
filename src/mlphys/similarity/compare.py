"""Comparing two students' documents with copydetect (MOSS-style winnowing).

copydetect's lower-level API is used (``CodeFingerprint``, ``compare_files``, ``highlight_overlap``) rather than its
``CopyDetector``: the report decides which pairs are compared (this year's students with each other and with earlier
years, never earlier years with each other), and copydetect's own HTML report loads Bootstrap from a CDN.

Code is tokenised by pygments' Python lexer and filtered by copydetect: identifiers become ``V``, function names
``F``, class names ``O``, strings ``S``, and whitespace and comments are dropped, so renaming variables,
rewording comments and reformatting change nothing.  The fingerprints are hashes of every ``NOISE_CHARS``
consecutive characters of the filtered code (copydetect's default noise and guarantee thresholds, 25: a window
of one, so no match of that length is missed).  Fingerprints that occur in the released template are removed
first: given code makes nobody alike.

Markdown answers are compared as text of their own (``filter=False``, on normalised words), not as comments of
the code: the tokeniser drops comments, so prose would count for nothing, and copied prose is as telling as copied
code.  Their similarity is reported beside the code's.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from copydetect import CodeFingerprint, compare_files
from copydetect.utils import highlight_overlap
from markupsafe import escape

# The length, in characters of filtered code (or of normalised text), of the shortest match that counts.
NOISE_CHARS = 25
# Prose shares short phrases by chance far more often than code shares 25 characters of filtered tokens
# (V=V.V(V)... is already a line); a match in prose counts from about eight words.
TEXT_NOISE_CHARS = 40


@dataclasses.dataclass(frozen=True)
class Kind:
    """How one kind of document is fingerprinted: code (tokenised, filtered) or prose (as it is)."""

    name: str
    suffix: str
    k: int
    filtered: bool

    def fingerprint(self, path: Path, boilerplate: np.ndarray | None = None) -> CodeFingerprint:
        return CodeFingerprint(
            str(path),
            k=self.k,
            win_size=1,
            boilerplate=boilerplate,
            filter=self.filtered,
            language="python" if self.filtered else None,
        )

    def boilerplate(self, paths: list[Path]) -> np.ndarray:
        """Every fingerprint of the given files (as copydetect's CopyDetector collects its boilerplate)."""
        hashes: list[int] = []
        for path in paths:
            hashes.extend(self.fingerprint(path).hashes)
        return np.unique(np.array(hashes, dtype=np.int64))


CODE = Kind("code", ".py", NOISE_CHARS, filtered=True)
TEXT = Kind("text", ".txt", TEXT_NOISE_CHARS, filtered=False)


@dataclasses.dataclass(frozen=True)
class Overlap:
    """How much of two documents is shared: ``similarity`` is, for each, the share of its fingerprinted characters
    found in the other (copydetect's similarity); ``chars`` the characters of the first that match (copydetect's
    "token overlap", in characters of filtered code); ``slices`` where the matches are in each original text."""

    similarity: tuple[float, float]
    chars: int
    slices: tuple[np.ndarray, np.ndarray]

    @property
    def highest(self) -> float:
        return max(self.similarity)


NO_OVERLAP = Overlap((0.0, 0.0), 0, (np.zeros((2, 0), dtype=int), np.zeros((2, 0), dtype=int)))


def compare(a: CodeFingerprint | None, b: CodeFingerprint | None) -> Overlap:
    """The overlap of two fingerprinted documents (none where either is missing or empty)."""
    if a is None or b is None or not a.hashes or not b.hashes:
        return NO_OVERLAP
    chars, (sim_a, sim_b), (slices_a, slices_b) = compare_files(a, b)
    if chars == 0:
        return NO_OVERLAP
    return Overlap((float(sim_a), float(sim_b)), int(chars), (slices_a, slices_b))


def highlighted(text: str, slices: np.ndarray, css_class: str) -> str:
    """``text`` as HTML, escaped, with the matching regions in ``<mark class=css_class>``."""
    if slices.size == 0 or not text:
        return str(escape(text))
    html, _ = highlight_overlap(text, slices, f'<mark class="{css_class}">', "</mark>", escape_html=True)
    return html


class Fingerprinter:
    """Writes each document into a file of its own in ``folder`` (copydetect reads files) and fingerprints it,
    the template's fingerprints removed."""

    def __init__(self, folder: Path, kind: Kind, template_documents: list[str]) -> None:
        self.folder = folder
        self.kind = kind
        self._count = 0
        paths = [self._write(doc, "template") for doc in template_documents]
        self.template_hashes = kind.boilerplate(paths)

    def _write(self, document: str, stem: str) -> Path:
        self._count += 1
        path = self.folder / f"{stem}-{self._count}{self.kind.suffix}"
        path.write_text(document, encoding="utf-8")
        return path

    def __call__(self, document: str) -> CodeFingerprint | None:
        if not document.strip():
            return None
        path = self._write(document, "student")
        try:
            return self.kind.fingerprint(path, self.template_hashes)
        finally:
            os.unlink(path)  # the raw text stays on the fingerprint; the file was only for copydetect


__all__ = [
    "CODE",
    "NOISE_CHARS",
    "TEXT",
    "TEXT_NOISE_CHARS",
    "Fingerprinter",
    "Kind",
    "Overlap",
    "compare",
    "highlighted",
]
