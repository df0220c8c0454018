"""Reading submissions without trusting them: the notebook file and the files beside it.

``SafeNotebookExporter`` reads a submitted notebook only if it is a regular file (not a link, device
or pipe) of bounded size holding a valid notebook; otherwise the student gets an empty notebook with a
note saying why, which grades to zero with that explanation in the feedback.  When nbgrader regrades a
submission, the exporter keeps the earlier result until the new one is complete (:mod:`regrade`).
``quarantine_unsafe_files`` is an nbgrader pre-convert hook: before nbgrader copies a submission's
files, it moves links (symbolic or hard), pipes and devices out of the submission into
``quarantine/`` beside ``submitted/``, where they are kept, so that nbgrader never follows them.
"""

from __future__ import annotations

import json
import os
import stat
import time
import typing as t
from pathlib import Path

import nbformat
from nbconvert.exporters import NotebookExporter
from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell, new_notebook
from nbgrader.converters import Autograde
from traitlets import Integer

from mlphys.grading.regrade import EarlierResults

UNREADABLE_NOTE = "**This submission could not be graded as submitted:** {reason} It was graded as an empty notebook."


def read_submitted_notebook(path: str | os.PathLike[str], max_bytes: int) -> NotebookNode:
    """Read a submitted notebook, refusing anything but a plain, bounded, valid notebook file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if os.path.islink(path):
            raise ValueError("the notebook file is a symbolic link.") from None
        raise ValueError(f"the notebook file cannot be opened ({exc.strerror}).") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder or a FIFO: os.fdopen would refuse or block
        os.close(fd)
        raise ValueError("the notebook is not a regular file.")
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if st.st_nlink > 1:
            raise ValueError("the notebook file is a hard link to another file.")
        if st.st_size > max_bytes:
            raise ValueError(f"the notebook file is larger than {max_bytes // 2**20} MB.")
        raw = handle.read(max_bytes + 1)
    if not raw.strip():
        raise ValueError("the notebook file is empty.")
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except (UnicodeDecodeError, json.JSONDecodeError, nbformat.ValidationError, RecursionError) as exc:
        raise ValueError(f"the notebook file is not a valid Jupyter notebook ({type(exc).__name__}).") from None
    except Exception as exc:  # nbformat raises assorted errors on odd but parseable JSON
        raise ValueError(f"the notebook file is not a valid Jupyter notebook ({type(exc).__name__}).") from None
    return nb


def placeholder_notebook(reason: str) -> NotebookNode:
    nb = new_notebook(cells=[new_markdown_cell(UNREADABLE_NOTE.format(reason=reason))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


class SafeNotebookExporter(NotebookExporter):
    """nbgrader's notebook exporter, reading submissions through :func:`read_submitted_notebook`.

    For ``nbgrader autograde`` it also keeps the earlier results of the submissions it regrades, and
    puts one back if regrading it fails (:mod:`mlphys.grading.regrade`).
    """

    max_notebook_mb = Integer(50, help="Largest notebook file accepted from a student.").tag(config=True)

    def __init__(self, *args: t.Any, **kw: t.Any) -> None:
        super().__init__(*args, **kw)
        # nbgrader builds this exporter after finding the submissions and before removing any old result.
        self.earlier = EarlierResults(self.parent, self.log) if isinstance(self.parent, Autograde) else None

    def from_filename(  # type: ignore[override]
        self, filename: str, resources: dict[str, t.Any] | None = None, **kw: t.Any
    ) -> tuple[str, dict[str, t.Any]]:
        resources = dict(resources or {})
        info = resources.get("nbgrader", {})
        if self.earlier is None or "student" not in info:
            return self._convert(filename, resources, **kw)
        with self.earlier.guard(info["student"], info["assignment"]):
            return self._convert(filename, resources, **kw)

    def _convert(self, filename: str, resources: dict[str, t.Any], **kw: t.Any) -> tuple[str, dict[str, t.Any]]:
        metadata = resources.setdefault("metadata", {})
        metadata.setdefault("name", Path(filename).stem)
        metadata.setdefault("path", str(Path(filename).parent))
        try:
            nb = read_submitted_notebook(filename, self.max_notebook_mb * 2**20)
        except ValueError as exc:
            self.log.warning("Unreadable submission %s: %s", filename, exc)
            nb = placeholder_notebook(str(exc))
        return self.from_notebook_node(nb, resources, **kw)


def _is_unsafe(st: os.stat_result) -> bool:
    """Links, pipes, devices, sockets, and hard links (which may share an inode with course files)."""
    if stat.S_ISDIR(st.st_mode):
        return False
    return not stat.S_ISREG(st.st_mode) or st.st_nlink > 1


def _fresh_directory(base: Path, parts: tuple[str, ...]) -> Path:
    """Create ``base/parts...`` one real directory at a time, refusing to pass through a link."""
    path = base
    for part in parts:
        path = path / part
        try:
            path.mkdir()
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise RuntimeError(f"refusing to quarantine through {path}: not a real directory")
    return path


def quarantine_unsafe_files(assignment: str, student: str, notebooks: list[str]) -> None:
    """nbgrader pre-convert hook: move unsafe entries out of a submission before nbgrader copies it.

    They go to ``quarantine/<student>/<assignment>/<time>/`` beside ``submitted/``, a new folder for
    every run, so that nothing a student submitted earlier can redirect a later move.
    """
    if not notebooks:
        return
    submission = Path(notebooks[0]).parent
    student_dir = submission.parent
    run = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    quarantine: Path | None = None
    for dirpath, dirnames, filenames in os.walk(submission):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = os.lstat(path)
            # nbgrader never copies notebooks; SafeNotebookExporter refuses unsafe ones with a reason.
            if not _is_unsafe(st) or name.endswith(".ipynb"):
                continue
            if quarantine is None:
                root = student_dir.parent.parent
                quarantine = _fresh_directory(root, ("quarantine", student_dir.name, submission.name, run))
            rel = path.relative_to(submission)
            target_dir = _fresh_directory(quarantine, rel.parent.parts)
            os.rename(path, target_dir / name)
            print(f"[mlphys] moved {path} to {target_dir / name}: not a plain file")
