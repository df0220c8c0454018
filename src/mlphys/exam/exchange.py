"""nbgrader's collect, with each submission dated by the time the exchange received it.

nbgrader's ``submit`` runs in the student's own process: the timestamp in the inbound folder's name and in its
``timestamp.txt`` are whatever that process wrote, and nbgrader's collect and autograde believe them (issues
#943, #1171).  What the student's process cannot set is an inode's change time (``st_ctime``): ``utime`` sets
the modification and access times, but the kernel sets the change time to its own clock whenever an inode's
content, metadata or place changes (Linux updates it on rename and link, too).  So the latest change time
of the inbound submission folder and of everything in it (the targets of links included, since the copy reads
through them) is when the exchange last received anything of that submission: its receipt time.  Touching
a submission afterwards can only make it later.

:class:`ReceiptCollect` (``c.ExchangeFactory.collect``) is nbgrader's default collect with that receipt time:

- of several inbound submissions of a student it collects the latest received, not the one whose name claims
  the latest time (with ``--before-duedate``: the latest received by the student's own deadline plus grace);
- the collected ``timestamp.txt`` holds the receipt time, which autograde writes into the gradebook, so that
  nbgrader's own ``total_seconds_late`` and the formgrader use it; the student's claim is kept beside it, in
  ``timestamp_claimed.txt``;
- every collected submission adds a line to ``<course>/receipts/<assignment>.csv`` (the instructor's only).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import stat
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default import ExchangeCollect

from mlphys.exam.window import as_utc_naive, find_exam

TIMESTAMP_FILE = "timestamp.txt"  # nbgrader's: autograde reads the submission time from it
CLAIMED_FILE = "timestamp_claimed.txt"  # what the student's process wrote into timestamp.txt
RECEIPTS_FOLDER = "receipts"
RECEIPT_FIELDS = ("student", "inbound_folder", "received_at", "claimed_timestamp", "collected_at")
# nbgrader's own timestamp format (Exchange.timestamp_format) in UTC, which its parse_utc reads back.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"


def received_at(folder: Path) -> dt.datetime:
    """When the exchange last received anything of the submission in ``folder``: the latest inode change time of
    the folder and of everything in it, following links as the collect's copy does.  UTC, without an offset (as
    nbgrader compares times).  A folder that cannot be read throughout raises: the copy could not read it either."""
    latest = os.lstat(folder).st_ctime_ns
    seen: set[tuple[int, int]] = set()

    def fail(error: OSError) -> None:
        raise error

    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=fail):
        here = os.stat(dirpath)
        if (here.st_dev, here.st_ino) in seen:  # a link back to a folder walked already
            dirnames.clear()
            continue
        seen.add((here.st_dev, here.st_ino))
        latest = max(latest, here.st_ctime_ns)
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            entry = os.lstat(path)
            latest = max(latest, entry.st_ctime_ns)
            if stat.S_ISLNK(entry.st_mode):
                try:  # the copy reads the link's target: a change to the target is a change to the submission
                    latest = max(latest, os.stat(path).st_ctime_ns)
                except OSError:  # a dangling link copies as nothing
                    pass
    # Rounded up to the microsecond: never earlier than the kernel's own record.
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=-(-latest // 1000))


class ReceiptCollect(ExchangeCollect):
    """nbgrader's collect, dating each submission by the exchange's receipt time (see the module's text)."""

    def _path_to_record(self, path: str) -> dict:
        record = super()._path_to_record(path)
        record["timestamp"] = received_at(Path(path))  # what nbgrader's collect sorts and compares by
        return record

    def init_src(self) -> None:
        super().init_src()
        if self.before_duedate and self.duedate is not None:
            self.src_records = self._latest_by_own_deadline()
        self._records = {record["filename"]: record for record in self.src_records}

    def _latest_by_own_deadline(self) -> list[dict]:
        """nbgrader compares every student's submissions with the common due date; this uses each student's own
        deadline (extension included) plus the exam's grace: the latest submission received by then, else the
        latest."""
        exam = find_exam(Path(self.coursedir.root), self.coursedir.assignment_id)
        grace = exam.grace if exam is not None else dt.timedelta(0)
        by_student: dict[str, list[dict]] = {}
        for record in self._all_records():
            by_student.setdefault(record["username"], []).append(record)
        chosen = []
        db_url = self.coursedir.db_url
        if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):  # relative to the course, as
            db_url = "sqlite:///" + str(Path(self.coursedir.root).resolve() / db_url[len("sqlite:///") :])  # autograde
        with Gradebook(db_url, self.coursedir.course_id) as gb:
            for student, records in by_student.items():
                try:
                    deadline = gb.find_submission(self.coursedir.assignment_id, student).duedate
                except MissingEntry:
                    deadline = self.duedate
                records = self._sort_by_timestamp(records)
                in_time = [r for r in records if r["timestamp"] <= deadline + grace]
                chosen.append((in_time or records)[0])
        return chosen

    def _all_records(self) -> list[dict]:
        student = self.coursedir.student_id or "*"
        pattern = f"{student}+{self.coursedir.assignment_id}+*"
        return [self._path_to_record(str(path)) for path in Path(self.inbound_path).glob(pattern)]

    def do_copy(self, src: str, dest: str, log: object = None) -> None:
        super().do_copy(src, dest, log)
        record = self._records.get(os.path.basename(src))
        if record is None:  # not a submission this collect chose (nbgrader copies nothing else; kept safe)
            return
        submitted = Path(dest)
        claimed_file = submitted / TIMESTAMP_FILE
        claimed = claimed_file.read_text(errors="replace").strip() if claimed_file.is_file() else ""
        (submitted / CLAIMED_FILE).write_text(claimed + "\n")
        claimed_file.write_text(record["timestamp"].strftime(TIMESTAMP_FORMAT))
        self._log_receipt(record, claimed)
        self.log.info(
            "%s: received by the exchange at %s UTC (the submission claims %s)",
            record["username"],
            record["timestamp"],
            claimed or "nothing",
        )

    def _log_receipt(self, record: dict, claimed: str) -> None:
        folder = Path(self.coursedir.root) / RECEIPTS_FOLDER
        folder.mkdir(mode=0o700, exist_ok=True)  # the instructor's record: students' names and times
        path = folder / f"{self.coursedir.assignment_id}.csv"
        new = not path.exists()
        with open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(RECEIPT_FIELDS)
            writer.writerow(
                (
                    record["username"],
                    record["filename"],
                    record["timestamp"].isoformat() + "+00:00",
                    claimed,
                    as_utc_naive(dt.datetime.now(dt.UTC)).isoformat() + "+00:00",
                )
            )
