"""The exam's questions with per-student numbers, and how the grader judges each answer.

A question draws the numbers of one student's variant from a random generator (:meth:`Question.draw`: plain
JSON data, which the student sees) and knows its answer key (:meth:`Question.key`: computed here, in the
grader, never sent to a kernel).  :meth:`Question.judge` says what is wrong with an answer in words a student
can act on, never the key.  The kinds:

* :class:`Number`: one number (a parameter count, a network's output, a gradient, a free energy), within a
  stated tolerance;
* :class:`Numbers`: several numbers (an RK4 step's new position and velocity);
* :class:`Choice`: one of several options, shuffled per student (which letter is right differs);
* :class:`TrueFalse`: statements drawn per student from a pool, each to be marked True or False.

Code questions (a function judged by hidden tests) and written answers (graded by hand with a rubric) need no
class here: they are ordinary nbgrader cells of the notebook.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t
from collections.abc import Callable, Sequence

import numpy as np

from mlphys.kernel.wire import Unsupported

Numbers_ = dict[str, t.Any]  # one question's part of a variant: plain JSON data
LETTERS = "abcdefgh"


def _shown(value: t.Any) -> str:
    """A student's answer, briefly, in the grader's words (what kind of thing, not its full text)."""
    if isinstance(value, Unsupported):
        return f"an object of type {value.type_name}"
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value[:20] + ("..." if len(value) > 20 else ""))
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _as_float(value: t.Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "fiu":
            return float(value)
        return None
    return float(value)


@dataclasses.dataclass(frozen=True)
class Question:
    """One exam question: ``name`` is the variable the student's answer cell sets."""

    id: str
    topic: str
    name: str
    points: float

    def draw(self, rng: np.random.Generator) -> Numbers_:
        raise NotImplementedError

    def key(self, numbers: Numbers_) -> t.Any:
        raise NotImplementedError

    def judge(self, numbers: Numbers_, answer: t.Any) -> str | None:
        """None if ``answer`` is right for these numbers, else what is wrong (never the key)."""
        raise NotImplementedError

    def matches(self, numbers: Numbers_, answer: t.Any) -> bool:
        """Whether ``answer`` is right for these numbers (for the check against neighbours' variants)."""
        return self.judge(numbers, answer) is None


@dataclasses.dataclass(frozen=True)
class Number(Question):
    """A number within ``rtol``/``atol`` of the key (``integer``: exactly, and a whole number)."""

    drawer: Callable[[np.random.Generator], Numbers_] = dataclasses.field(repr=False, default=lambda rng: {})
    keyer: Callable[[Numbers_], float] = dataclasses.field(repr=False, default=lambda n: 0.0)
    what: str = "the number asked for"
    rtol: float = 1e-6
    atol: float = 1e-9
    integer: bool = False

    def draw(self, rng: np.random.Generator) -> Numbers_:
        return self.drawer(rng)

    def key(self, numbers: Numbers_) -> float | int:
        value = self.keyer(numbers)
        return round(float(value)) if self.integer else float(value)

    def judge(self, numbers: Numbers_, answer: t.Any) -> str | None:
        value = _as_float(answer)
        if value is None:
            return f"{self.name} must be a number ({self.what}); it is {_shown(answer)}."
        if not math.isfinite(value):
            return f"{self.name} is not finite; it should be {self.what}."
        key = self.key(numbers)
        if self.integer:
            if value != round(value) or round(value) != round(key):
                return f"{self.name} = {_shown(answer)} is not {self.what} for your numbers."
            return None
        if not abs(value - key) <= self.atol + self.rtol * abs(key):
            return (
                f"{self.name} = {_shown(answer)} is not {self.what} for your numbers (within a relative "
                f"tolerance of {self.rtol:g})."
            )
        return None


@dataclasses.dataclass(frozen=True)
class Numbers(Question):
    """Several numbers, in order, each within ``rtol``/``atol`` of the key."""

    drawer: Callable[[np.random.Generator], Numbers_] = dataclasses.field(repr=False, default=lambda rng: {})
    keyer: Callable[[Numbers_], Sequence[float]] = dataclasses.field(repr=False, default=lambda n: ())
    what: str = "the numbers asked for"
    labels: tuple[str, ...] = ()
    rtol: float = 1e-6
    atol: float = 1e-9

    def draw(self, rng: np.random.Generator) -> Numbers_:
        return self.drawer(rng)

    def key(self, numbers: Numbers_) -> list[float]:
        return [float(v) for v in self.keyer(numbers)]

    def judge(self, numbers: Numbers_, answer: t.Any) -> str | None:
        key = self.key(numbers)
        values = answer.tolist() if isinstance(answer, np.ndarray) and answer.ndim == 1 else answer
        if not isinstance(values, list | tuple) or len(values) != len(key):
            return f"{self.name} must be {len(key)} numbers ({', '.join(self.labels)}); it is {_shown(answer)}."
        floats = [_as_float(v) for v in values]
        if any(f is None or not math.isfinite(f) for f in floats):
            return f"{self.name} must hold {len(key)} finite numbers ({', '.join(self.labels)})."
        wrong = [
            label
            for label, f, k in zip(self.labels, floats, key, strict=True)
            if not abs(t.cast(float, f) - k) <= self.atol + self.rtol * abs(k)
        ]
        if wrong:
            verb = "is" if len(wrong) == 1 else "are"
            return f"In {self.name}, {' and '.join(wrong)} {verb} not right for your numbers."
        return None


@dataclasses.dataclass(frozen=True)
class Choice(Question):
    """One right option among distractors, shown in an order drawn per student; the answer is its letter."""

    right: str = ""
    wrong: tuple[str, ...] = ()

    def draw(self, rng: np.random.Generator) -> Numbers_:
        options = [self.right, *self.wrong]
        order = rng.permutation(len(options))
        return {"options": {LETTERS[i]: options[j] for i, j in enumerate(order)}}

    def key(self, numbers: Numbers_) -> str:
        return next(letter for letter, text in numbers["options"].items() if text == self.right)

    def judge(self, numbers: Numbers_, answer: t.Any) -> str | None:
        letters = list(numbers["options"])
        if not isinstance(answer, str) or answer.strip().lower() not in letters:
            return (
                f"{self.name} must be one of the letters {', '.join(repr(x) for x in letters)}; it is {_shown(answer)}."
            )
        if answer.strip().lower() != self.key(numbers):
            return f"{self.name} = {answer.strip().lower()!r} is not the right option."
        return None


@dataclasses.dataclass(frozen=True)
class TrueFalse(Question):
    """``count`` statements drawn from a pool (statement, truth); the answer is a list of True/False in order."""

    pool: tuple[tuple[str, bool], ...] = ()
    count: int = 3

    def draw(self, rng: np.random.Generator) -> Numbers_:
        chosen = rng.choice(len(self.pool), size=self.count, replace=False)
        return {"statements": [self.pool[int(i)][0] for i in chosen]}

    def key(self, numbers: Numbers_) -> list[bool]:
        truth = dict(self.pool)
        return [truth[s] for s in numbers["statements"]]

    def judge(self, numbers: Numbers_, answer: t.Any) -> str | None:
        key = self.key(numbers)
        values = answer.tolist() if isinstance(answer, np.ndarray) else answer
        if (
            not isinstance(values, list | tuple)
            or len(values) != len(key)
            or not all(isinstance(v, bool) for v in values)
        ):
            return f"{self.name} must be a list of {len(key)} values True or False, one per statement, in order."
        wrong = sum(v != k for v, k in zip(values, key, strict=True))
        if wrong:
            return f"{wrong} of your {len(key)} answers in {self.name} {'is' if wrong == 1 else 'are'} not right."
        return None
