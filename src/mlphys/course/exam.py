"""For the exam notebook: your own numbers (your variant) and the equations of motion of its code question.

``my_variant(exam)`` reads ``variant.json``, which comes with your copy of the exam when you fetch it (every
student's numbers differ).  It prints your numbers, question by question, and your deadline.  When the exam is
graded, the grader puts your numbers in again itself: editing ``VARIANT`` or the file changes nothing but your
own answers.

The right-hand sides ``f(t, y)`` below (y = (position, velocity)) are what the code question's ``rk4_step`` is
called with.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

VARIANT_FILE = "variant.json"


def my_variant(exam: str, path: str | Path = VARIANT_FILE, show: bool = True) -> dict[str, Any]:
    """Your numbers for ``exam`` (from the file that came with your copy); printed unless ``show`` is False."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"There is no {file} beside this notebook: it comes with your copy of the exam when you fetch it "
            "(Assignments tab, or `nbgrader fetch_assignment`). Fetch the exam again, or ask your instructor."
        )
    data = json.loads(file.read_text())
    if data.get("exam") != exam:
        raise ValueError(f"{file} holds the numbers of {data.get('exam')!r}, not of {exam!r}")
    variant = data["variant"]
    if show:
        print(describe_variant(variant, data.get("student", ""), data.get("deadline")))
    return variant


def describe_variant(variant: dict[str, Any], student: str = "", deadline: str | None = None) -> str:
    """Your numbers as text: one block per question."""
    lines = [f"Your numbers{f' ({student})' if student else ''}:"]
    if deadline:
        lines.insert(0, f"Your exam ends at {deadline} (your extension, if you have one, is included).")
    for question, numbers in variant.items():
        lines.append(f"  {question}:")
        for name, value in numbers.items():
            if isinstance(value, dict):  # options of a multiple-choice question
                lines += [f"      ({letter}) {text}" for letter, text in value.items()]
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                lines += [f"      {i:2d}  {text}" for i, text in enumerate(value, start=1)]
            else:
                lines.append(f"      {name} = {value}")
    return "\n".join(lines)


# ---- equations of motion for rk4_step: f(t, y) with y = (position, velocity) ---------------------------


def harmonic(t: float, y: np.ndarray) -> np.ndarray:
    """A harmonic oscillator with omega = 1."""
    return np.array([y[1], -y[0]], dtype=float)


def pendulum(t: float, y: np.ndarray) -> np.ndarray:
    """A pendulum, g / l = 1: the angle's second derivative is -sin(angle)."""
    return np.array([y[1], -math.sin(y[0])], dtype=float)


def driven(t: float, y: np.ndarray) -> np.ndarray:
    """A damped oscillator driven at frequency 2: it depends on the time t."""
    return np.array([y[1], -y[0] - 0.2 * y[1] + math.cos(2.0 * t)], dtype=float)
