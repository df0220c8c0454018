"""Hidden tests: split them out of test cells and run them in the trusted grader.

An instructor writes a hidden test as ordinary Python between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``, calling the student's functions by name.  Here that code runs in the grader's
own process: each name it needs from the student's notebook is bound either to a
:class:`StudentFunction` proxy, which forwards a call as plain data to the sandboxed kernel and
returns validated plain data, or to a validated copy of the student's variable.  No student object
ever exists in this process, so ``__eq__`` tricks, patched modules or ndarray subclasses cannot reach
the verdict.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import math
import symtable
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from mlphys.grading import checks
from mlphys.kernel import wire

BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
# The most a failed test's message may hold: a student's exception (2,000 characters), its traceback (6,000) and
# the grader's words about the call.  Whatever a message quotes of a student's value, it is cut here.
MAX_VERDICT_CHARS = 10_000


def split_test_source(source: str) -> tuple[str, str]:
    """Return (visible, hidden) parts of a test cell's source; markers are dropped."""
    visible: list[str] = []
    hidden: list[str] = []
    inside = False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            inside = True
        elif END_HIDDEN in line:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return "\n".join(visible).strip("\n"), "\n".join(hidden).strip("\n")


class StudentError(Exception):
    """The student's own code raised while the grader called it."""

    def __init__(self, name: str, type_name: str, message: str, traceback: str, arguments: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.name, self.type_name, self.message, self.traceback = name, type_name, message, traceback
        self.arguments = arguments  # what the grader passed, in words (see checks.describe_arguments)


class KernelGone(Exception):
    """The student's kernel died, hung or flooded; no further calls can be made."""


# A transport sends one request dict to the kernel's bridge and returns its (unvalidated) reply.
Transport = Callable[[dict[str, Any]], Any]


class StudentFunction(wire.RemoteRef):
    """Stands in the grader for a function defined in the student's notebook.

    Calling it calls the student's function in their kernel with plain-data copies of the arguments and
    returns a validated copy of the result.  :meth:`call_seeing_arguments` also returns the arguments as
    the student's function left them.
    """

    def __init__(self, name: str, transport: Transport) -> None:
        super().__init__(name)
        self.__name__ = self.__qualname__ = name  # as for the function it stands for
        self._transport = transport

    def __repr__(self) -> str:
        return f"<your function {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(args, kwargs, see_arguments=False)[0]

    def call_seeing_arguments(self, *args: Any) -> tuple[Any, list[Any]]:
        """``(result, args_after)``: the result, and the positional arguments as they are after the call.

        ``args_after`` is validated plain data like any result; a student function that travelled as an
        argument comes back as a :class:`wire.RemoteRef` of the same name, a course function as itself.
        """
        return self._call(args, {}, see_arguments=True)

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any], see_arguments: bool) -> tuple[Any, list[Any]]:
        request = {"op": "call", "name": self.name, "args": wire.encode(list(args)), "kwargs": wire.encode(kwargs)}
        if see_arguments:
            request["see_arguments"] = True
        reply = self._transport(request)
        if type(reply) is not dict or type(reply.get("ok")) is not bool:
            raise wire.WireError("malformed reply")
        if not reply["ok"]:
            err = reply.get("error")
            if type(err) is not dict:
                raise wire.WireError("malformed error reply")
            raise StudentError(
                self.name,
                str(err.get("type", "Exception"))[:100],
                str(err.get("message", ""))[:2000],
                str(err.get("traceback", ""))[-6000:],
                checks.describe_arguments(args, kwargs),
            )
        value = wire.decode_obj(reply.get("value"))
        if not see_arguments:
            return value, []
        after = wire.decode_obj(reply.get("args_after"), wire.RemoteRef, wire.CourseFunction)
        if type(after) is not list or len(after) != len(args):
            raise wire.WireError("malformed arguments after the call")
        return value, after


def _scope_names(source: str) -> tuple[set[str], set[str]]:
    """(names the block binds at its top level, names it reads from module scope), scope-aware."""
    top = symtable.symtable(source, "<hidden tests>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    read: set[str] = set()

    def visit(table: symtable.SymbolTable, is_top: bool) -> None:
        for sym in table.get_symbols():
            if sym.is_referenced() and (is_top or sym.is_global()) and sym.get_name() not in bound:
                read.add(sym.get_name())
        for child in table.get_children():
            visit(child, False)

    visit(top, True)
    return bound, read - set(dir(builtins))


def bound_names(source: str) -> set[str]:
    """Names a block of code defines at its top level (assignments, imports, defs, classes)."""
    return _scope_names(source)[0]


def free_names(source: str) -> set[str]:
    """Names a block of code reads from module scope without defining them or finding them in builtins."""
    return _scope_names(source)[1]


@dataclasses.dataclass
class Verdict:
    passed: bool
    message: str


def _base_namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {"__builtins__": builtins, "__name__": "__hidden_tests__", "np": np, "math": math}
    ns.update({name: getattr(checks, name) for name in checks.__all__})
    return ns


class HiddenTestSession:
    """Runs the hidden blocks of one notebook, in order, against one student kernel.

    Like a kernel, it keeps the names that hidden blocks define (reference helpers, seeded data) for
    later blocks; the student's names are looked up afresh for every block, since the notebook may
    redefine them between test cells.
    """

    def __init__(
        self, transport: Transport, reserved: Iterable[str] = (), trusted: dict[str, Any] | None = None
    ) -> None:
        self._transport = transport
        # The grader's own names (checks, and e.g. ``submission``): never the student's.
        self._trusted = {**_base_namespace(), **(trusted or {})}
        # Names that some hidden block of this notebook defines are the instructor's, even before
        # (or if) that block runs: they are never looked up in the student's notebook.
        self._reserved = set(reserved)

    def _student_bindings(self, names: set[str]) -> tuple[dict[str, Any], set[str]]:
        wanted = sorted(n for n in names if n not in self._trusted and n not in self._reserved)
        if not wanted:
            return {}, set()
        reply = self._transport({"op": "describe", "names": wanted})
        described = reply.get("names") if type(reply) is dict and reply.get("ok") is True else None
        if type(described) is not dict:
            raise wire.WireError("malformed reply to a name lookup")
        bindings: dict[str, Any] = {}
        missing: set[str] = set()
        for name in wanted:
            entry = described.get(name)
            kind = entry.get("kind") if type(entry) is dict else None
            if kind == "function":
                bindings[name] = StudentFunction(name, self._transport)
            elif kind == "value":
                bindings[name] = wire.decode_obj(entry.get("value"))
            else:
                missing.add(name)
        return bindings, missing

    def value(self, name: str, default: Any) -> Any:
        """A validated copy of the student's variable ``name``; ``default`` if there is none (or a function)."""
        bindings, _ = self._student_bindings({name})
        found = bindings.get(name, default)
        return default if isinstance(found, StudentFunction) else found

    def run(self, hidden_source: str, label: str) -> Verdict:
        """Execute one hidden block; its verdict is pass unless it raises."""
        missing: set[str] = set()
        bindings: dict[str, Any] = {}
        ns: dict[str, Any] = {}
        if "hypothesis" in hidden_source:
            use_grading_profile()
        try:
            code = compile(hidden_source, f"<hidden tests {label}>", "exec")
            bindings, missing = self._student_bindings(free_names(hidden_source))
            ns = {**self._trusted, **bindings}
            exec(code, ns)
        except Exception as exc:  # every failure becomes a verdict; see describe_failure
            return Verdict(False, describe_failure(exc, missing))
        finally:
            # What the block defined stays the instructor's, even if the block failed half-way.
            for key, value in ns.items():
                if key not in bindings or value is not bindings[key]:
                    self._trusted[key] = value
        return Verdict(True, "")


@functools.cache
def use_grading_profile() -> None:
    """Make hypothesis's defaults those of grading, for every property-based hidden test that does not set its own.

    Deterministic (``derandomize``: the same submission meets the same examples), no example database (nothing
    written into the course directory, nothing remembered from another student's run), no deadline (a slow
    kernel is the time limits' business), and no "explain" phase: after shrinking a failure, it re-runs the test
    hundreds of times only to annotate the failing case with comments, which :func:`_failing_case` drops anyway
    (about 2.5 s for each blank submission of ``02_backprop``).
    """
    from hypothesis import Phase, settings

    phases = tuple(phase for phase in Phase if phase is not Phase.explain)
    settings.register_profile("mlphys-grading", derandomize=True, database=None, deadline=None, phases=phases)
    settings.load_profile("mlphys-grading")


def describe_failure(exc: BaseException, missing: Iterable[str] = ()) -> str:
    """The one wording of a failed hidden test for the student: what went wrong, in words they can act on.

    Every failure of a hidden block passes through here: a kit check's message, an exception of the
    student's code, a missing name, a dead kernel, data the grader refused.  No hidden-test source and no
    reference value is ever part of it.
    """
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # e.g. several failures from hypothesis
        exc = exc.exceptions[0]
    # Property-based hidden tests: hypothesis attaches the smallest failing case it found as a note
    # ("Failing test case: ..." or, in older versions, "Falsifying example: ..."); it names the
    # generated inputs, never the test's source.
    notes = [n for n in getattr(exc, "__notes__", []) if n.startswith(("Failing test case", "Falsifying example"))]
    return _cut("\n".join([_describe_one(exc, missing), *map(_failing_case, notes)]), MAX_VERDICT_CHARS)


def _cut(text: str, limit: int) -> str:
    """``text``, or its beginning and a mark that the rest was left out."""
    return text if len(text) <= limit else text[:limit] + "\n[... the rest of this message is left out]"


def _failing_case(note: str) -> str:
    """Hypothesis's note without the hidden test's function name and hypothesis's own comments.

    ``Failing test case: _check(\n    # The test always failed when ...\n    x=0,\n)`` becomes
    ``The smallest failing case found: x=0``.
    """
    body = note.split(":", 1)[1] if ":" in note else note
    body = body.split("(", 1)[1] if "(" in body else body
    body = body.rsplit(")", 1)[0]
    lines = (line.split("  # ")[0].strip() for line in body.splitlines())  # hypothesis's comments go
    parts = [line for line in lines if line and not line.startswith("#")]
    return "The smallest failing case found: " + " ".join(parts).rstrip(",")


def _describe_one(exc: BaseException, missing: Iterable[str]) -> str:
    if isinstance(exc, NameError) and getattr(exc, "name", None) in missing:
        return (
            f"Your notebook does not define `{exc.name}`, which this test needs. Define it with exactly "
            "this name and run your notebook from top to bottom."
        )
    if isinstance(exc, StudentError):
        called = f"Calling your `{exc.name}`" + (f" with {exc.arguments}" if exc.arguments else "")
        text = f"{called} raised {exc.type_name}: {exc.message}"
        return text + ("\n\n" + exc.traceback if exc.traceback else "")
    if isinstance(exc, KernelGone):
        return str(exc)
    if isinstance(exc, wire.WireError):
        return f"Your code handed back data that the grader cannot accept ({exc})."
    if isinstance(exc, AssertionError):
        return str(exc) or "A hidden check failed."
    return f"A hidden check could not use what your code returned ({type(exc).__name__}: {str(exc)[:300]})."
