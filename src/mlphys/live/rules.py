"""The rules of a live challenge, ``challenges.toml`` in the course root.

::

    ["03_autoencoder_challenge"]
    start = 2026-12-01T09:00:00+01:00
    end = 2026-12-15T18:00:00+01:00
    entries_per_day = 5          # scored entries per student per day (days begin at midnight, start's offset)
    over_limit = "next day"      # or "refuse": an entry over the day's limit waits for the next day, or is refused
    counting = "best"            # which entries count at the end: "latest", "best" (public), or "selected"
    selected = 2                 # with counting = "selected": up to this many entries the student marks
    retrain_top = 2              # at the end, the retraining check retrains this many best entries of each board

A student marks an entry for ``counting = "selected"`` by setting ``COUNT_THIS_ENTRY = True`` beside ``TRACKS`` in
the notebook they submit; where a student marked none, their best public entry counts (as on Kaggle).  Times carry
their UTC offset, as in ``exams.toml`` (:mod:`mlphys.exam.window`, whose checks this file shares).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
import typing as t
from pathlib import Path

from mlphys.exam.window import ScheduleError, _aware_datetime, _known_keys, _Locator

RULES_FILE = "challenges.toml"
RULE_KEYS = ("start", "end", "entries_per_day", "over_limit", "counting", "selected", "retrain_top")
OVER_LIMIT = ("next day", "refuse")
COUNTING = ("latest", "best", "selected")
SELECT_NAME = "COUNT_THIS_ENTRY"  # the notebook variable that marks an entry for counting = "selected"


class RulesError(ScheduleError):
    """``challenges.toml`` says something that is not a challenge's rules; the message names the line and key."""


@dataclasses.dataclass(frozen=True)
class Rules:
    """How one challenge runs live."""

    assignment: str
    start: dt.datetime
    end: dt.datetime
    entries_per_day: int | None = None  # None: no limit
    over_limit: str = "next day"
    counting: str = "best"
    selected: int = 1
    retrain_top: int = 2

    @property
    def timezone(self) -> dt.tzinfo:
        """The offset the rules were written in: days begin at its midnight, and times are shown in it."""
        assert self.start.tzinfo is not None  # parse_rules accepts no naive time
        return self.start.tzinfo

    def day_of(self, moment: dt.datetime) -> dt.date:
        """The challenge's day of ``moment`` (aware)."""
        return moment.astimezone(self.timezone).date()

    def day_start(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.timezone)

    def has_ended(self, now: dt.datetime) -> bool:
        return now >= self.end


def rules_path(root: Path) -> Path:
    return Path(root) / RULES_FILE


def load_rules(root: Path) -> dict[str, Rules]:
    """Every live challenge in the course's ``challenges.toml``; none where there is no such file."""
    path = rules_path(root)
    if not path.is_file():
        return {}
    return parse_rules(path.read_text(encoding="utf-8"), str(path))


def parse_rules(text: str, source: str = RULES_FILE) -> dict[str, Rules]:
    """Read and check the rules; raise :class:`RulesError` naming the line and key of the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: not valid TOML: {exc}") from None
    where = _Locator(text, source)
    found: dict[str, Rules] = {}
    try:
        for assignment, table in data.items():
            if not isinstance(table, dict):
                raise where.error((assignment,), "not a challenge: each challenge is a table of its own")
            found[assignment] = _rules(assignment, table, where)
    except ScheduleError as exc:
        raise RulesError(str(exc)) from None
    return found


def _rules(assignment: str, table: dict[str, t.Any], where: _Locator) -> Rules:
    _known_keys(table, RULE_KEYS, (assignment,), where)
    for required in ("start", "end"):
        if required not in table:
            raise where.error((assignment,), f"missing {required!r} (a live challenge needs start and end)")
    start = _aware_datetime(table["start"], (assignment, "start"), where)
    end = _aware_datetime(table["end"], (assignment, "end"), where)
    if end <= start:
        raise where.error((assignment, "end"), "must come after start")
    per_day = table.get("entries_per_day")
    if per_day is not None:
        per_day = _count(per_day, (assignment, "entries_per_day"), where)
    over_limit = _choice(table.get("over_limit", "next day"), OVER_LIMIT, (assignment, "over_limit"), where)
    counting = _choice(table.get("counting", "best"), COUNTING, (assignment, "counting"), where)
    selected = _count(table.get("selected", 1), (assignment, "selected"), where)
    retrain_top = _count(table.get("retrain_top", 2), (assignment, "retrain_top"), where, least=0)
    return Rules(assignment, start, end, per_day, over_limit, counting, selected, retrain_top)


def _count(value: t.Any, path: tuple[str, ...], where: _Locator, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise where.error(path, f"must be a whole number of at least {least}, not {value!r}")
    return value


def _choice(value: t.Any, known: tuple[str, ...], path: tuple[str, ...], where: _Locator) -> str:
    if value not in known:
        raise where.error(path, f"must be one of {', '.join(repr(k) for k in known)}, not {value!r}")
    return t.cast(str, value)
