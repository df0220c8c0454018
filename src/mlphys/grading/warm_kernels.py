"""A pool of warm sandboxed kernels, so that a live challenge scores an entry in about the time its model computes.

Scoring one entry cold costs seconds, nearly all of it a new kernel's start: bubblewrap, the cgroup, ipykernel
and importing torch.  A live challenge service has time between entries, so :class:`WarmKernels` launches
kernels ahead, each in a sandbox and cgroup of its own and importing the heavy modules (``preload``) before
anyone's code is known, and hands one out per session.

Every kernel is still fresh: it serves exactly one session (:meth:`WarmKernels.session`, with the contract of
:func:`mlphys.grading.isolated.fresh_session`) and is destroyed with its sandbox and cgroup afterwards, never
reused for another call or another student.  What a warm kernel knows when it is handed out is what any
kernel knows after ``import numpy, torch``: nothing of the grader's, nothing of another entry's.

No threads: a kernel boots as a process of its own, so the pool only has to start it early.  The caller
launches replacements (:meth:`WarmKernels.refill`) when it has handed out what one entry needs, so that they
boot while it waits for the next entry rather than compete with the entry being scored.  Every launch runs
on the calling thread's event loop through ``run_sync``, as every step of a session does; a kernel launched on
one thread's loop also serves a session on another's (its manager only holds the process), but the pool's own
bookkeeping is not locked: use one pool from one thread at a time.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import types
from collections.abc import Iterator

from mlphys.grading.isolated import FreshSession, Isolation, LaunchedKernel, kernel_session

log = logging.getLogger(__name__)


def _launch_settings(isolation: Isolation) -> tuple[object, ...]:
    """What a kernel's sandbox is made with when it is launched: a session cannot change these afterwards."""
    return (isolation.limits, isolation.use_bwrap, isolation.gpu, isolation.kernel_log)


class WarmKernels:
    """Sandboxed kernels launched ahead, each handed out for exactly one session and destroyed after it.

    ``size`` kernels wait at any time (two: an autoencoder entry runs its encoder and its decoder in a kernel
    each); ``preload`` names the modules each imports as it starts.  A context manager; :meth:`close` kills
    the kernels still waiting.
    """

    def __init__(self, isolation: Isolation, size: int = 2, preload: tuple[str, ...] = ("numpy", "torch")) -> None:
        if size < 1:
            raise ValueError("a pool needs room for at least one kernel")
        self.isolation, self.size, self.preload = isolation, size, tuple(preload)
        self._waiting: collections.deque[LaunchedKernel] = collections.deque()
        self._closed = False
        try:
            self._fill()
        except BaseException:
            self.close()
            raise

    @property
    def waiting(self) -> tuple[LaunchedKernel, ...]:
        """The kernels launched and not yet handed out, oldest first."""
        return tuple(self._waiting)

    @contextlib.contextmanager
    def session(self, cells: list[str], deadline: float, isolation: Isolation | None = None) -> Iterator[FreshSession]:
        """A warm kernel that has run ``cells``, for several calls; destroyed (sandbox, cgroup) afterwards.

        As :func:`~mlphys.grading.isolated.fresh_session`: everything by ``deadline`` (``time.monotonic()``),
        waiting for a kernel still booting included, and the same exceptions (``CellFailed``, ``KernelTimeout``,
        ``KernelProblem``).  ``isolation`` may bound this session's time and output more tightly than the pool's
        (a challenge passes the time left to the entry); what the sandbox is made of (limits, bubblewrap, GPU,
        log) must be the pool's, since the kernel was launched with it.
        """
        if self._closed:
            raise RuntimeError("this pool of kernels is closed")
        isolation = self.isolation if isolation is None else isolation
        if _launch_settings(isolation) != _launch_settings(self.isolation):
            raise ValueError("a session cannot change the limits, sandbox, GPU or log its pool's kernels run with")
        launched = self._take()
        try:
            launched.wait_until_listening(deadline)
            with kernel_session(launched, isolation, cells, deadline) as session:
                yield session
        finally:
            launched.destroy()

    def close(self) -> None:
        """Kill the kernels still waiting, with their sandboxes and cgroups.  A closed pool hands out none."""
        self._closed = True
        while self._waiting:
            self._waiting.popleft().destroy()

    def __enter__(self) -> WarmKernels:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.close()

    def _launch(self) -> LaunchedKernel:
        launched = LaunchedKernel(self.isolation, self.preload)
        try:
            launched.launch()
        except BaseException:
            launched.destroy()
            raise
        return launched

    def _fill(self) -> None:
        while len(self._waiting) < self.size:
            self._waiting.append(self._launch())

    def refill(self) -> None:
        """Launch replacements for the kernels handed out, to boot while the caller waits for work.

        Not done by :meth:`session` itself: a kernel importing torch takes a core for a second or two, which an
        entry being scored on a small machine would feel.  A failure to launch one is logged and does not stop
        anything: a session launches what is missing.
        """
        try:
            self._fill()
        except Exception:
            log.exception("launching a warm kernel failed")

    def _take(self) -> LaunchedKernel:
        """The oldest waiting kernel that is still alive (one that died while it waited is destroyed, never
        handed out); a kernel launched now where none is left."""
        while self._waiting:
            launched = self._waiting.popleft()
            if launched.alive():
                return launched
            log.warning("a warm kernel died while it waited; it is replaced")
            launched.destroy()
        return self._launch()
