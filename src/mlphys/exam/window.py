"""The exam schedule, ``exams.toml`` in the course root, and each student's time window.

::

    ["07_exam"]
    start = 2026-12-06T09:00:00+01:00
    minutes = 120
    grace_minutes = 2
    ["07_exam".extensions]
    alice = { extra_minutes = 30 }                 # accommodations
    bob = { start = 2026-12-08T09:00:00+01:00 }   # another window (the repeat date), same length

One table per assignment.  A student's window starts at their own ``start`` (default: the exam's), lasts
``minutes`` plus their ``extra_minutes``, and submissions are accepted until its end plus ``grace_minutes``.
Times carry their UTC offset: a deadline must not depend on the clock settings of whichever machine grades.

nbgrader knows one due date per assignment and an extension per student: the common end is the due date, and a
student's extension is how much later their own end is (:attr:`Window.extension`, negative for a student who
sits the exam earlier).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import re
import tomllib
import typing as t
from pathlib import Path

SCHEDULE_FILE = "exams.toml"
EXAM_KEYS = ("start", "minutes", "grace_minutes", "extensions")
EXTENSION_KEYS = ("extra_minutes", "start")
EXAMPLE_START = "2026-12-06T09:00:00+01:00"


class ScheduleError(ValueError):
    """``exams.toml`` says something that is not a schedule; the message names the file, the line and the key."""


@dataclasses.dataclass(frozen=True)
class Extension:
    """What one student's window differs in: more time, another start, or both."""

    extra_minutes: float = 0.0
    start: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Window:
    """When one student may work and submit (times with their UTC offset)."""

    student: str | None  # None: the common window
    start: dt.datetime
    end: dt.datetime  # the student's deadline
    grace_end: dt.datetime  # the last moment a submission is accepted as on time
    extension: dt.timedelta  # end minus the common end: the extension nbgrader's gradebook holds


@dataclasses.dataclass(frozen=True)
class Exam:
    """One assignment's schedule."""

    assignment: str
    start: dt.datetime
    minutes: float
    grace_minutes: float = 0.0
    extensions: t.Mapping[str, Extension] = dataclasses.field(default_factory=dict)

    @property
    def grace(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.grace_minutes)

    @property
    def timezone(self) -> dt.tzinfo:
        """The offset the schedule was written in: times shown to students and instructors use it."""
        assert self.start.tzinfo is not None  # parse_schedule accepts no naive time
        return self.start.tzinfo

    @property
    def common(self) -> Window:
        """The window of every student without an extension; its end is the assignment's due date."""
        end = self.start + dt.timedelta(minutes=self.minutes)
        return Window(None, self.start, end, end + self.grace, dt.timedelta(0))

    def window(self, student: str) -> Window:
        extension = self.extensions.get(student)
        if extension is None:
            return dataclasses.replace(self.common, student=student)
        start = extension.start or self.start
        end = start + dt.timedelta(minutes=self.minutes + extension.extra_minutes)
        return Window(student, start, end, end + self.grace, end - self.common.end)


def schedule_path(root: Path) -> Path:
    return Path(root) / SCHEDULE_FILE


def load_schedule(root: Path) -> dict[str, Exam]:
    """Every exam in the course's ``exams.toml``; none where the course has no such file."""
    path = schedule_path(root)
    if not path.is_file():
        return {}
    return parse_schedule(path.read_text(encoding="utf-8"), str(path))


def find_exam(root: Path, assignment: str) -> Exam | None:
    """``assignment``'s schedule, or None where ``exams.toml`` does not list it (or does not exist)."""
    return load_schedule(root).get(assignment)


def parse_schedule(text: str, source: str = SCHEDULE_FILE) -> dict[str, Exam]:
    """Read and check a schedule; raise :class:`ScheduleError` naming the line and key of the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message names the line and column
        raise ScheduleError(f"{source}: not valid TOML: {exc}") from None
    where = _Locator(text, source)
    exams: dict[str, Exam] = {}
    for assignment, table in data.items():
        if not isinstance(table, dict):
            raise where.error(
                (assignment,),
                f'not an exam: each exam is a table of its own, e.g. ["07_exam"] followed by start = {EXAMPLE_START}',
            )
        exams[assignment] = _exam(assignment, table, where)
    return exams


def _exam(assignment: str, table: dict[str, t.Any], where: _Locator) -> Exam:
    _known_keys(table, EXAM_KEYS, (assignment,), where)
    for required in ("start", "minutes"):
        if required not in table:
            raise where.error((assignment,), f"missing {required!r} (an exam needs start and minutes)")
    extensions = table.get("extensions", {})
    if not isinstance(extensions, dict):
        raise where.error(
            (assignment, "extensions"), "must be a table of students, e.g. alice = { extra_minutes = 30 }"
        )
    return Exam(
        assignment=assignment,
        start=_aware_datetime(table["start"], (assignment, "start"), where),
        minutes=_minutes(table["minutes"], (assignment, "minutes"), where, positive=True),
        grace_minutes=_minutes(table.get("grace_minutes", 0), (assignment, "grace_minutes"), where),
        extensions={student: _extension(assignment, student, value, where) for student, value in extensions.items()},
    )


def _extension(assignment: str, student: str, value: t.Any, where: _Locator) -> Extension:
    path = (assignment, "extensions", student)
    if not student.strip() or any(c in student for c in "+*/ \t"):
        raise where.error(path, "not a student id nbgrader accepts (no spaces, '+', '*' or '/')")
    if not isinstance(value, dict):
        raise where.error(path, "must be a table, e.g. { extra_minutes = 30 } or { start = " + EXAMPLE_START + " }")
    _known_keys(value, EXTENSION_KEYS, path, where)
    if not value:
        raise where.error(path, "says nothing: give extra_minutes, start, or both")
    return Extension(
        extra_minutes=_minutes(value.get("extra_minutes", 0), (*path, "extra_minutes"), where),
        start=_aware_datetime(value["start"], (*path, "start"), where) if "start" in value else None,
    )


def _known_keys(table: dict[str, t.Any], known: tuple[str, ...], path: tuple[str, ...], where: _Locator) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise where.error((*path, key), f"unknown key {key!r}: {hint}(known here: {', '.join(known)})")


def _aware_datetime(value: t.Any, path: tuple[str, ...], where: _Locator) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise where.error(
                path,
                f"{value.isoformat()} has no UTC offset: write e.g. {EXAMPLE_START} (or Z for UTC), so that the "
                "deadline does not depend on the time zone of the machine that grades",
            )
        return value
    if isinstance(value, dt.date):
        raise where.error(path, f"{value.isoformat()} is a date without a time: write e.g. {EXAMPLE_START}")
    if isinstance(value, str):
        raise where.error(path, f"must be a date and time without quotes, e.g. {EXAMPLE_START}, not the text {value!r}")
    raise where.error(path, f"must be a date and time with its UTC offset, e.g. {EXAMPLE_START}")


def _minutes(value: t.Any, path: tuple[str, ...], where: _Locator, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(path, f"must be a number of minutes, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise where.error(path, f"must be {'more than' if positive else 'at least'} 0 minutes, not {value!r}")
    return float(value)


class _Locator:
    """Finds the line of a key for error messages (tomllib reports lines only for syntax errors)."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """The line (from 1) where the last key of ``path`` is written, searching each key after its parent's."""
        found: int | None = None
        start = 0
        for key in path:
            escaped = re.escape(key)
            pattern = re.compile(rf"""(?:^|[\s\[.{{,])(?:"{escaped}"|'{escaped}'|{escaped})\s*[=\].]""")
            for index in range(start, len(self.lines)):
                line = self.lines[index]
                if not line.lstrip().startswith("#") and pattern.search(line):
                    found, start = index, index
                    break
            else:
                break
        return None if found is None else found + 1

    def error(self, path: tuple[str, ...], message: str) -> ScheduleError:
        line = self.line_of(path)
        at = f", line {line}" if line is not None else ""
        return ScheduleError(f"{self.source}{at}: {dotted(path)}: {message}")


def dotted(path: tuple[str, ...]) -> str:
    """A key path as TOML writes it: ``"07_exam".extensions.alice``."""
    return ".".join(key if re.fullmatch(r"[A-Za-z_-][A-Za-z0-9_-]*", key) else f'"{key}"' for key in path)


def as_utc_naive(moment: dt.datetime) -> dt.datetime:
    """A time as nbgrader's gradebook stores it: UTC without an offset."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def from_utc_naive(moment: dt.datetime) -> dt.datetime:
    """A time from nbgrader's gradebook (UTC without an offset), with its offset."""
    return moment.replace(tzinfo=dt.UTC)


def format_time(moment: dt.datetime, tz: dt.tzinfo | None = None) -> str:
    """``2026-12-06 11:00:00 (UTC+01:00)``: in ``tz`` (default: its own offset); milliseconds where there are
    any, so that a receipt a fraction of a second after a deadline does not read as the deadline itself."""
    local = moment.astimezone(tz) if tz is not None else moment
    millis = f".{local.microsecond // 1000:03d}" if local.microsecond else ""
    offset = local.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}" if offset else ""
    return f"{local:%Y-%m-%d %H:%M:%S}{millis} (UTC{offset})"


def format_minutes(minutes: float) -> str:
    """``2 minutes``, ``1 minute``, ``0.5 minutes``."""
    text = f"{minutes:g}"
    return f"{text} minute" if text == "1" else f"{text} minutes"
