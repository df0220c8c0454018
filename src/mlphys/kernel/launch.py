"""Starts the student's kernel for grading: ipykernel's own launcher, run by this file's path, without a debugger.

ipykernel imports ``debugpy`` at start whenever it is installed (about 0.08 s of every kernel's start) to offer
a debugger that no grading client ever attaches; with ``debugpy`` marked missing, ipykernel reports that it has
no debugger and starts without one.  Otherwise this is ``python -m ipykernel_launcher``.
"""

import sys

if __name__ == "__main__":
    # Python put this file's directory (or, with -m, the working directory) first on sys.path: it goes while
    # ipykernel loads, as in ipykernel_launcher; IPython then adds the working directory for the student's imports.
    if not sys.flags.safe_path:
        del sys.path[0]
    sys.modules["debugpy"] = None  # type: ignore[assignment]  # import debugpy now raises ImportError

    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
