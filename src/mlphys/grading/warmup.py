"""The last module the warm process imports before it forks a grading process for each student.

``mlphys autograde`` forks every student's ``nbgrader autograde`` from one warm process (``parallel``'s fork
server, which imports ``parallel.WARM_MODULES`` in order).  Importing this module there does, once, the work
that each forked student would otherwise repeat, and then hides the warm process's objects from the garbage
collector.  Measured 2026-12-01 on ``01_xor_nets`` (2 cores): a student's grading process went from 0.53 to
0.33 CPU seconds (its sandboxed kernel not counted).
"""

import gc
import inspect
import sys

import ipykernel.kernelspec  # noqa: F401  the native kernel's spec, looked up for every kernel start
import IPython.paths  # noqa: F401  jupyter_client looks up kernel directories through it (about 60 modules)
import nbformat.validator
import sqlalchemy.dialects.sqlite  # noqa: F401  the default gradebook's dialect

from mlphys.grading import hidden, sandbox

# matplotlib's font list, which every sandbox shows its kernel: found (or built) once, not once per student.
sandbox.matplotlib_font_list()

# hypothesis, for property-based hidden tests (importing it takes about 0.4 s), with grading's defaults.
hidden.use_grading_profile()

# nbformat compiles its JSON schema on the first validation (about 0.1 s) and keeps it for the process.
nbformat.validator.get_validator()

# inspect maps every loaded module's file on its first search for the module of a frame, which hypothesis makes
# for each frame of a failing property-based hidden test (about 0.15 s once per student, in each student's process).
inspect.getmodule(sys._getframe(), "<mlphys warm-up>")

# Move every object of the warm process into the collector's permanent generation: otherwise each student's
# first full collection walks all of them (about 0.1 s), writing to their pages, which the fork then copies.
gc.freeze()
