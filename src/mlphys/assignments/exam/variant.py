"""Per-student variants: each student's numbers, drawn from the course secret, the exam id and the student id.

The seed is an HMAC of the exam id and the student id keyed with the course secret, so the same student always
gets the same variant (the grader recomputes it from the student id in the gradebook), and nobody without the
secret can compute anyone's variant.  Each question draws from a generator of its own (spawned by question
id), so adding a question to the exam leaves the other questions' numbers as they were.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import typing as t
from collections.abc import Sequence

import numpy as np

from mlphys.assignments.exam.questions import Question


def _seed(secret: str, *parts: str) -> int:
    if not secret:
        raise RuntimeError("no course secret is set: variants cannot be drawn (c.SandboxedExecute.challenge_secret)")
    message = "\0".join(parts).encode()
    return int.from_bytes(hmac.new(secret.encode(), message, hashlib.sha256).digest()[:16], "little")


def draw_variant(questions: Sequence[Question], secret: str, exam: str, student: str) -> dict[str, t.Any]:
    """``{question id: that question's numbers}`` for one student: plain JSON data."""
    variant: dict[str, t.Any] = {}
    for question in questions:
        rng = np.random.default_rng(_seed(secret, exam, student, question.id))
        variant[question.id] = question.draw(rng)
    # Through JSON and back: exactly what the student's notebook and the grader both hold.
    return json.loads(json.dumps(variant))
