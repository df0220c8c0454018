"""Order entries into one board per track, with a total, documented tie-break.

Ranking is the one place that decides which cost counts (the public cost while the challenge runs, the private
cost on the final board) and which way is better (lower, or higher for a score such as a return). Rows made for a
public board carry no private cost at all, so nothing downstream can leak it by accident.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Sequence

import numpy

from mlphys.leaderboard.entry import Entry
from mlphys.leaderboard.pseudonyms import secret_order, shown_names


def tie_break(*, higher_is_better: bool = False, score: str = "cost") -> str:
    """The ranking rules in words, for the pages and exports of a board ranked by ``score`` in that direction."""
    order = "highest" if higher_is_better else "lowest"
    return (
        f"Within a track, ranked entries are ordered by {score}, {order} first: the public {score} while the "
        f"challenge runs, the private {score} on the final board. Equal {score}s (compared exactly, as stored) are "
        "ordered by the earlier time the grader recorded the entry (an entry without one counts as latest), then "
        "by shown name alphabetically, then by a salted hash of the student. Entries flagged by the retraining "
        f"check are shown but not ranked and come after the ranked ones; entries whose {score} is not a finite "
        "number are not ranked and come last."
    )


TIE_BREAK = tie_break()

RANKED, FLAGGED, INVALID = "ranked", "flagged", "invalid cost"


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of a board, as shown. ``rank`` is None for unranked rows; ``status`` says why.

    ``private_cost`` is None unless the board is final. ``student`` is for the instructor's own use and is never
    exported; ``name`` is what the public sees.
    """

    track: str
    rank: int | None
    status: str  # RANKED, FLAGGED or INVALID
    name: str
    detail: str
    public_cost: float
    private_cost: float | None
    retrain: str
    retrained_cost: float | None
    submitted_at: datetime.datetime | None
    student: str = dataclasses.field(repr=False)
    picture: numpy.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def cost(self) -> float:
        """The cost this row is ranked by."""
        return self.public_cost if self.private_cost is None else self.private_cost


def as_float(value: object) -> float:
    """A cost as a float; anything that is not a number (None, a string) becomes NaN instead of crashing."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _moment(when: datetime.datetime | None) -> tuple[bool, float]:
    """Sort key for a submission time: None sorts last; naive times are UTC, as nbgrader stores them."""
    if when is None:
        return (True, 0.0)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return (False, when.timestamp())


def rank(
    entries: Sequence[Entry],
    tracks: Sequence[str],
    *,
    final: bool,
    salt: str | None = None,
    higher_is_better: bool = False,
) -> dict[str, list[Row]]:
    """Rank ``entries`` into boards: track -> rows, best first, every one of ``tracks`` present (possibly empty).

    The best entry has the lowest cost, or the highest where the challenge says ``higher_is_better`` (a return).

    ``final`` picks the split that decides the rank (private if True, public otherwise). Pass the course ``salt``
    to get the published pseudonyms and exactly the published order; without it, students who did not opt in
    are named by their student id (an instructor's view, never to be exported).
    """
    if salt is not None:
        names = shown_names({e.student: e.name for e in entries}, salt)
        secret = {e.student: secret_order(e.student, salt) for e in entries}
    else:
        names = {e.student: (e.name.strip() if e.name and e.name.strip() else e.student) for e in entries}
        secret = {e.student: e.student.encode() for e in entries}

    def cost(entry: Entry) -> float:
        return as_float(entry.private_cost if final else entry.public_cost)

    def group(entry: Entry) -> int:
        if not math.isfinite(cost(entry)):
            return 2
        return 1 if entry.retrain == "flagged" else 0

    def key(entry: Entry) -> tuple:
        value = cost(entry)
        retrained = as_float(entry.retrained_cost)
        return (
            group(entry),
            (-value if higher_is_better else value) if math.isfinite(value) else 0.0,
            _moment(entry.submitted_at),
            names[entry.student],
            secret[entry.student],
            entry.detail,
            entry.retrain,
            retrained if math.isfinite(retrained) else math.inf,
        )

    boards: dict[str, list[Row]] = {track: [] for track in tracks}
    unknown = sorted({e.track for e in entries} - set(boards))
    if unknown:
        raise ValueError(f"unknown track(s) {', '.join(map(repr, unknown))}; expected one of {', '.join(tracks)}")
    for entry in sorted(entries, key=key):
        board = boards[entry.track]
        kind = group(entry)
        board.append(
            Row(
                track=entry.track,
                rank=len(board) + 1 if kind == 0 else None,
                status=FLAGGED if entry.retrain == "flagged" else (RANKED if kind == 0 else INVALID),
                name=names[entry.student],
                detail=str(entry.detail),
                public_cost=as_float(entry.public_cost),
                private_cost=as_float(entry.private_cost) if final else None,
                retrain=entry.retrain,
                retrained_cost=None if entry.retrained_cost is None else as_float(entry.retrained_cost),
                submitted_at=entry.submitted_at,
                student=entry.student,
                picture=entry.picture,
            )
        )
    return boards
