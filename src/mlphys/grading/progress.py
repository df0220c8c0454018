"""Progress of a long run (students graded, entries retrained) for a person at a terminal.

A bar on stderr shows how many are done of the total, the failures so far, the time elapsed and an estimate of
what remains (tqdm).  Where stderr is not a terminal (CI, a log file, the formgrader) the bar is silent; the
lines the run prints through :meth:`Progress.write` appear either way, above the bar.
"""

from __future__ import annotations

import sys
import typing as t

from tqdm import tqdm


class Progress:
    """``total`` things to do; call :meth:`done` once for each, with whether it failed."""

    def __init__(self, total: int, what: str, stream: t.TextIO | None = None) -> None:
        self.failures = 0
        self._stream = stream or sys.stderr
        # disable=None: tqdm draws only where the stream is a terminal.
        self._bar = tqdm(total=total, unit=what, desc=what, file=self._stream, disable=None, dynamic_ncols=True)
        self._bar.set_postfix(failed=0)

    def done(self, failed: bool = False) -> None:
        self.failures += failed
        self._bar.set_postfix(failed=self.failures, refresh=False)
        self._bar.update(1)

    def write(self, text: str, stream: t.TextIO | None = None) -> None:
        """Print ``text`` (to stdout unless told) without breaking the bar."""
        tqdm.write(text.rstrip("\n"), file=stream or sys.stdout)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
