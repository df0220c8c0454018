"""One scored challenge entry, as the trusted grader hands it to the leaderboard.

The grader (not the student) fills every field; the leaderboard only orders and displays them. The record is
frozen so that ranking and exporting can never change what was graded.
"""

from __future__ import annotations

import dataclasses
import datetime

import numpy

# The boards, in the order they are shown.
TRACKS: tuple[str, ...] = ("MEDIUM/NORMAL", "MEDIUM/LONG", "HARD/NORMAL", "HARD/LONG")
RETRAIN_STATES: tuple[str, ...] = ("unchecked", "reproduced", "flagged")


@dataclasses.dataclass(frozen=True)
class Entry:
    """A student's scored entry on one track.

    ``name`` is the real name to show and is set only when the student opted in; otherwise the boards show a
    salted pseudonym and the student id never leaves the grader. ``private_cost`` is secret until the final
    board. ``reconstructions`` are the decodings of the first m public test images (shown for top entries).
    """

    student: str
    name: str | None
    track: str
    code_size: int
    public_cost: float
    private_cost: float
    submitted_at: datetime.datetime | None
    retrain: str = "unchecked"
    retrained_cost: float | None = None
    # Arrays do not compare or hash as single values, so they take no part in equality.
    reconstructions: numpy.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # A typo in a track or status would otherwise silently drop an entry from every board.
        if self.track not in TRACKS:
            raise ValueError(f"unknown track {self.track!r}; expected one of {', '.join(TRACKS)}")
        if self.retrain not in RETRAIN_STATES:
            raise ValueError(f"unknown retrain status {self.retrain!r}; expected one of {', '.join(RETRAIN_STATES)}")
