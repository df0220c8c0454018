"""Starts the student's kernel for grading: ipykernel's own launcher, run by this file's path, without a debugger.

ipykernel imports ``debugpy`` at start whenever it is installed (about 0.08 s of every kernel's start) to offer
a debugger that no grading client ever attaches; with ``debugpy`` marked missing, ipykernel reports that it has
no debugger and starts without one.  Otherwise this is ``python -m ipykernel_launcher``.

A warm kernel (:mod:`mlphys.grading.warm_kernels`) is launched before anyone's code is known, and may import
heavy modules then (``MLPHYS_PRELOAD``, names separated by commas: numpy, torch): a second of importing torch is
spent while the kernel waits in its pool, not while an entry is scored.  The student's code finds them imported,
as it would after its own ``import torch``.
"""

import importlib
import os
import sys

PRELOAD_VARIABLE = "MLPHYS_PRELOAD"


def preload() -> None:
    """Import the modules ``MLPHYS_PRELOAD`` names, and drop the variable (the kernel's environment is then the
    same as a cold kernel's).  A module that fails to import is left to the student's own import, which then
    reports it as it would in any kernel."""
    for name in filter(None, os.environ.pop(PRELOAD_VARIABLE, "").split(",")):
        try:
            importlib.import_module(name)
        except Exception:  # see the docstring
            continue


if __name__ == "__main__":
    # Python put this file's directory (or, with -m, the working directory) first on sys.path: it goes while
    # ipykernel loads, as in ipykernel_launcher; IPython then adds the working directory for the student's imports.
    if not sys.flags.safe_path:
        del sys.path[0]
    sys.modules["debugpy"] = None  # type: ignore[assignment]  # import debugpy now raises ImportError
    preload()  # before ipykernel, with the student's files still off sys.path: none of them replaces a module

    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
