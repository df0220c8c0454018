"""Run the grader's asyncio code wherever nbgrader calls it.

``nbgrader autograde`` on the command line calls the engine with no event loop running, the formgrader
calls it from a request handler inside Jupyter's running loop, and an instructor may call nbgrader's API
from a notebook, whose kernel has a loop running too.  ``asyncio.run`` refuses to start inside a running
loop, so there the coroutine gets a fresh loop of its own in a worker thread, and the caller waits for it
(the formgrader's handler blocks its loop while grading either way).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import typing as t
from collections.abc import Coroutine

T = t.TypeVar("T")


def run_coroutine(coroutine: Coroutine[t.Any, t.Any, T]) -> T:
    """``asyncio.run(coroutine)``, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mlphys-grading") as worker:
        return worker.submit(asyncio.run, coroutine).result()
