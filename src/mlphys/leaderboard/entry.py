"""One scored challenge entry, as the trusted grader hands it to the leaderboard.

The grader (not the student) fills every field; the leaderboard only orders and displays them. The record is
frozen so that ranking and exporting can never change what was graded.
"""

from __future__ import annotations

import dataclasses
import datetime
import typing as t
from collections.abc import Mapping

import numpy

RETRAIN_STATES: tuple[str, ...] = ("unchecked", "reproduced", "flagged", "timed out")


@dataclasses.dataclass(frozen=True)
class BoardSpec:
    """What the boards of one challenge show: its tracks in display order, and the words around the numbers.

    The leaderboard knows no challenge by name: ``mlphys leaderboard`` makes this from the assignment's
    :class:`~mlphys.grading.challenge.Challenge`.
    """

    title: str
    tracks: tuple[str, ...]
    track_notes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    metric: str = "cost"  # what the cost measures
    higher_is_better: bool = False  # the direction of the ranking: a cost (lower) or a return (higher)
    score_name: str = "cost"  # the number's short name in headings ("cost", "return")
    detail_label: str = "detail"
    picture_caption: str = "what the best entries of this board make of them"
    picture_cmap: str = "gray_r"

    @classmethod
    def of(cls, challenge: t.Any) -> BoardSpec:
        return cls(
            title=challenge.title,
            tracks=tuple(challenge.tracks),
            track_notes=dict(challenge.track_notes),
            metric=challenge.metric,
            higher_is_better=challenge.higher_is_better,
            score_name=challenge.score_name,
            detail_label=challenge.detail_label,
            picture_caption=challenge.picture_caption,
            picture_cmap=challenge.picture_cmap,
        )


@dataclasses.dataclass(frozen=True)
class Entry:
    """A student's scored entry on one track.

    ``name`` is the real name to show and is set only when the student opted in; otherwise the boards show a
    salted pseudonym and the student id never leaves the grader. ``private_cost`` is secret until the final
    board. ``detail`` is a few words the board shows beside the cost; ``picture`` what the page shows of a top
    entry (e.g. its decodings of the first public test images).
    """

    student: str
    name: str | None
    track: str
    detail: str
    public_cost: float
    private_cost: float
    submitted_at: datetime.datetime | None
    retrain: str = "unchecked"
    retrained_cost: float | None = None
    # Arrays do not compare or hash as single values, so they take no part in equality.
    picture: numpy.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # A typo in a status would otherwise silently drop an entry from every board.
        if self.retrain not in RETRAIN_STATES:
            raise ValueError(f"unknown retrain status {self.retrain!r}; expected one of {', '.join(RETRAIN_STATES)}")
