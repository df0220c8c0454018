"""Load test of the live challenge service: a burst of entries handed in through nbgrader's own submit to a running
``mlphys challenge serve``, which is stopped with SIGTERM and started again in the middle of it.

    .venv/bin/python benchmarks/bench_live_load.py [--entries 200] [--students 100] [--per-day 3] [--workers 2]
        [--warm-kernels 1] [--no-restart] [--timeout 1800] [--keep DIR]

A course in a temporary folder (the repository's ``nbgrader_config.py``, the challenge released into its exchange,
``challenges.toml`` with a day's limit of ``--per-day`` entries, ``over_limit = "refuse"``, counting the best
public entry).  The service runs as a subprocess (``--poll 0.5``, ``--workers``); the students (``load000``...)
hand in a mix of the challenge's demo cases (the reference weights, undertrained weights, the blank release, weights
that carry pickled code, a decoder of the wrong shape, a truncated weights file) one after another, as fast as
nbgrader's ``ExchangeSubmit`` goes.  A tenth of the students hand in two entries more than the day's limit.

With the restart (the default): the first half of the burst is handed in, the service is stopped with SIGTERM once
a quarter of the burst is scored, the second half is handed in while it is down, and it is started again.

Then, once every entry is scored or refused (bounded by ``--timeout``), it checks: every inbound folder has exactly
one row, each scored exactly once (one ``scored`` line in the service's log per scored row, none dropped); no
entry lost; every entry over the day's limit refused, every other one scored; each kind of case scored as it
should be (a figure, or a problem the student is told); the published board consistent with the store (each
student at most once per track, with the best public figure of their entries, nobody missing); no traceback in
the service's log or output.  And it prints the throughput (scored entries per minute, from the first receipt to
the last score) and the latency from the exchange's receipt to the score (median, max).

``grader_tests/test_live_load.py`` runs :func:`run_load` with a small burst and asserts the checks.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = "03_autoencoder_challenge"
COURSE = "ml4physics"  # the repository's nbgrader_config.py
TRACK = "MEDIUM/NORMAL"
# The demo cases handed in, in turn, and what scoring each must give: a public figure, or a problem.
MIX = ("ref_solution", "undertrained", "blank_release", "pickled_code", "wrong_shape", "truncated_weights")
WITH_FIGURE = {"ref_solution", "undertrained"}


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    """What to hand in, and how the service runs."""

    entries: int = 200
    students: int = 100
    per_day: int = 3  # the day's limit (over it: refused)
    workers: int = 2
    warm_kernels: int = 1  # per scorer process
    poll: float = 0.5
    restart: bool = True
    timeout: float = 1800.0  # for every entry to be scored
    assignment: str = ASSIGNMENT


@dataclasses.dataclass
class LoadReport:
    """What happened, and what is wrong with it (``problems``, empty when every check holds)."""

    plan: LoadPlan
    handed_in: dict[str, tuple[str, str]]  # inbound folder -> (student, case)
    states: collections.Counter[str]
    problems: list[str]
    scored: int = 0
    refused: int = 0
    throughput_per_min: float = math.nan
    latency_median_s: float = math.nan
    latency_max_s: float = math.nan
    scoring_median_s: float = math.nan  # the service's own seconds per entry
    hand_in_s: float = math.nan  # handing in the whole burst
    restart_gap_s: float = math.nan  # from SIGTERM to the next entry scored by the restarted service
    wall_s: float = math.nan
    log_warnings: int = 0

    def figures(self) -> str:
        plan = self.plan
        return "\n".join(
            [
                f"{len(self.handed_in)} entries from {plan.students} students handed in in {self.hand_in_s:.1f} s; "
                f"{self.scored} scored, {self.refused} refused (the day's limit of {plan.per_day})",
                f"service: --workers {plan.workers} --warm-kernels {plan.warm_kernels} --poll {plan.poll}"
                + (
                    f"; stopped (SIGTERM) and started again mid-burst, next score {self.restart_gap_s:.1f} s after"
                    if plan.restart
                    else ""
                ),
                f"throughput: {self.throughput_per_min:.1f} scored entries/min (first receipt to last score)",
                f"latency received -> scored: median {self.latency_median_s:.1f} s, max {self.latency_max_s:.1f} s; "
                f"scoring itself: median {self.scoring_median_s:.2f} s per entry",
                f"wall: {self.wall_s:.0f} s; log: {self.log_warnings} warnings",
                "checks: " + ("all hold" if not self.problems else f"{len(self.problems)} FAILED"),
                *(f"  - {p}" for p in self.problems),
            ]
        )


# ---- the course ---------------------------------------------------------------------------------------------------


def midday_zone(now: dt.datetime) -> dt.timezone:
    """A UTC offset in which ``now`` is about noon: the run stays within one challenge day whenever it runs."""
    hours = (12 - now.astimezone(dt.UTC).hour + 12) % 24 - 12
    return dt.timezone(dt.timedelta(hours=hours))


def make_course(root: Path, plan: LoadPlan) -> None:
    """The course directory, its exchange with the challenge released, and the challenge's rules."""
    from mlphys import assignments

    root.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    now = dt.datetime.now(midday_zone(dt.datetime.now(dt.UTC)))
    (root / "challenges.toml").write_text(
        f'["{plan.assignment}"]\nstart = {(now - dt.timedelta(hours=2)).isoformat()}\n'
        f"end = {(now + dt.timedelta(hours=6)).isoformat()}\nentries_per_day = {plan.per_day}\n"
        'over_limit = "refuse"\ncounting = "best"\nretrain_top = 0\n'
    )
    course = root / "exchange" / COURSE
    (course / "inbound").mkdir(parents=True)
    notebook = assignments.get(plan.assignment).notebook
    (course / "outbound" / plan.assignment).mkdir(parents=True)
    shutil.copy(
        REPO / "release" / plan.assignment / f"{notebook}.ipynb",
        course / "outbound" / plan.assignment / f"{notebook}.ipynb",
    )


def write_templates(folder: Path, assignment: str) -> dict[str, Path]:
    """Each case of :data:`MIX` written once (a student's folder is a copy of one)."""
    from mlphys import assignments
    from mlphys.demo.case import Materials

    plugin = assignments.get(assignment)
    materials = Materials(REPO, assignment, plugin.notebook)
    cases = {c.student: c for c in plugin.cases(materials)}
    made = {}
    for name in MIX:
        made[name] = folder / name
        made[name].mkdir(parents=True)
        if name == "truncated_weights":  # the reference notebook, its weights file cut short in the copy
            cases["ref_solution"].write(made[name], materials)
            for weights in made[name].glob("*.pt"):
                weights.write_bytes(weights.read_bytes()[:1000])
        else:
            cases[name].write(made[name], materials)
    return made


def burst(plan: LoadPlan) -> list[tuple[str, str]]:
    """(student, case) of every entry, in the order they are handed in: a tenth of the students ("keen") hand in
    two more than the day's limit, the others share the rest; each student's entries are spread over the burst."""
    students = [f"load{i:03d}" for i in range(plan.students)]
    keen = students[: max(1, plan.students // 10)]
    counts = dict.fromkeys(students, 0)
    for student in keen:
        counts[student] = plan.per_day + 2
    others = students[len(keen) :]
    left = plan.entries - sum(counts.values())
    if left < len(others) or left > len(others) * plan.per_day:
        raise SystemExit(f"{plan.entries} entries do not fit {plan.students} students with a limit of {plan.per_day}")
    for index in range(left):
        counts[others[index % len(others)]] += 1
    order = []
    while any(counts.values()):  # round robin: everyone's first entry, then everyone's second, ...
        for student in students:
            if counts[student]:
                counts[student] -= 1
                order.append(student)
    return [(student, MIX[index % len(MIX)]) for index, student in enumerate(order)]


class Submitter:
    """Students handing in through nbgrader's own ``ExchangeSubmit``, as ``nbgrader submit`` does."""

    def __init__(self, root: Path, assignment: str) -> None:
        from mlphys.grading.parallel import read_config

        self.root = root
        self.assignment = assignment
        self.config = read_config(root)
        self.config.Exchange.cache = str(root / "nbgrader_cache")  # not the user's own

    def hand_in(self, student: str, template: Path) -> str:
        """Submit a copy of ``template`` as ``student``; the inbound folder it made."""
        from nbgrader.auth import Authenticator
        from nbgrader.coursedir import CourseDirectory
        from nbgrader.exchange.default import ExchangeSubmit

        work = self.root / "students" / student
        folder = work / COURSE / self.assignment
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(template, folder)
        coursedir = CourseDirectory(
            config=self.config, root=str(self.root), course_id=COURSE, assignment_id=self.assignment, student_id=student
        )
        submit = ExchangeSubmit(
            coursedir=coursedir,
            authenticator=Authenticator(config=self.config),
            config=self.config,
            assignment_dir=str(work),
        )
        submit.log.setLevel("ERROR")  # its notes on each copy
        submit.start()
        return str(submit.assignment_filename)


# ---- the service ------------------------------------------------------------------------------------------------


def running_in_group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` that still run (zombies, already dead, are not counted)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found


class Service:
    """``mlphys challenge serve`` as a subprocess; its output appended to ``output.log`` in the course."""

    def __init__(self, root: Path, plan: LoadPlan, secret: str) -> None:
        self.root, self.plan = root, plan
        self.env = {**os.environ, "MLPHYS_CHALLENGE_SECRET": secret}
        self.process: subprocess.Popen[bytes] | None = None
        self.exits: list[int | None] = []
        self.left_running = 0  # stops after which processes of the service's session were still running

    def start(self) -> None:
        command = [
            str(Path(sys.executable).parent / "mlphys"),
            "challenge",
            "serve",
            self.plan.assignment,
            "--root",
            str(self.root),
            "--poll",
            str(self.plan.poll),
            "--workers",
            str(self.plan.workers),
            "--warm-kernels",
            str(self.plan.warm_kernels),
        ]
        with open(self.root / "output.log", "ab") as output:
            self.process = subprocess.Popen(
                command, cwd=self.root, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, wait: float = 90.0) -> None:
        """SIGTERM to the service (it stops its scorers itself), as an init system stops it; killed if it does
        not stop within ``wait`` seconds (a problem the report names)."""
        process = self.process
        if process is None:
            return
        self.process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                self.exits.append(None)
                return
        self.exits.append(process.returncode)
        # What the service started (its scorers, their kernels) must have stopped with it; whatever is left in its
        # session is ended by its process group, and named in the report.  A child that exits just after the
        # service (multiprocessing's resource tracker) is given a moment, and the dead are not counted: an orphan
        # is reaped by init, which a container's init may do late.
        if not wait_for(lambda: not running_in_group(process.pid), 5.0, None, step=0.1):
            self.left_running += 1
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the service exited ({self.process.returncode}):\n{self.output()[-4000:]}")

    def output(self) -> str:
        path = self.root / "output.log"
        return path.read_text(errors="replace") if path.exists() else ""


# ---- the run -------------------------------------------------------------------------------------------------------


def read_rows(root: Path, assignment: str) -> list[t.Any]:
    from mlphys.grading.parallel import prepare_gradebook
    from mlphys.live import store

    with store.EntryStore(prepare_gradebook(root)) as entries:
        return entries.entries(assignment)


def wait_for(condition: t.Callable[[], bool], timeout: float, service: Service | None, step: float = 0.5) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds (a ``service`` that exits meanwhile raises)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None:
            service.check_running()
        if condition():
            return True
        time.sleep(step)
    return condition()


def run_load(plan: LoadPlan, root: Path, secret: str = "the live load test's course secret") -> LoadReport:
    """Hand in the burst to a running service, restart it mid-burst (``plan.restart``), wait, check."""
    from mlphys.live import store

    began = time.monotonic()
    make_course(root, plan)
    templates = write_templates(root / "templates", plan.assignment)
    submitter = Submitter(root, plan.assignment)
    service = Service(root, plan, secret)
    order = burst(plan)
    handed_in: dict[str, tuple[str, str]] = {}
    report = LoadReport(plan, handed_in, collections.Counter(), [])
    first_part = order[: len(order) // 2] if plan.restart else order

    def settled() -> int:
        return sum(r.state in (store.SCORED, store.REFUSED) for r in read_rows(root, plan.assignment))

    stopped_at = None
    try:
        service.start()
        started = time.monotonic()
        for student, case in first_part:
            handed_in[submitter.hand_in(student, templates[case])] = (student, case)
        handing = time.monotonic() - started
        if plan.restart:
            quarter = max(1, len(order) // 4)
            if not wait_for(lambda: settled() >= quarter, plan.timeout, service):
                report.problems.append(f"not even {quarter} entries scored within {plan.timeout:.0f} s")
            stopped_at = dt.datetime.now(dt.UTC)
            service.stop()
            started = time.monotonic()
            for student, case in order[len(first_part) :]:  # handed in while the service is down
                handed_in[submitter.hand_in(student, templates[case])] = (student, case)
            handing += time.monotonic() - started
            service.start()
        report.hand_in_s = handing
        done = wait_for(lambda: settled() >= len(order), plan.timeout, service, step=1.0)
        if not done:
            report.problems.append(f"only {settled()} of {len(order)} entries done in {plan.timeout:.0f} s")
        # The board is republished by the service's next round after the last score.
        wait_for(lambda: not board_problems(root, plan, secret), 10 + 10 * plan.poll, service)
    finally:
        service.stop()
    report.wall_s = time.monotonic() - began
    check(report, root, secret, service, stopped_at)
    return report


# ---- the checks ----------------------------------------------------------------------------------------------------


def check(report: LoadReport, root: Path, secret: str, service: Service, stopped_at: dt.datetime | None) -> None:
    from mlphys.live import store

    plan, problems = report.plan, report.problems
    rows = read_rows(root, plan.assignment)
    by_folder = collections.defaultdict(list)
    for row in rows:
        by_folder[row.folder].append(row)
    inbound = {p.name for p in (root / "exchange" / COURSE / "inbound").iterdir()}
    if inbound != set(report.handed_in):
        problems.append(f"the inbound folders are not those handed in: {sorted(inbound ^ set(report.handed_in))[:5]}")
    lost = sorted(set(report.handed_in) - set(by_folder))
    if lost:
        problems.append(f"{len(lost)} entries lost (no row): {lost[:3]}")
    twice = sorted(f for f, found in by_folder.items() if len(found) != 1)
    if twice:
        problems.append(f"{len(twice)} folders with more than one row: {twice[:3]}")
    strays = sorted(set(by_folder) - set(report.handed_in))
    if strays:
        problems.append(f"{len(strays)} rows of folders nobody handed in: {strays[:3]}")
    report.states = collections.Counter(row.state for row in rows)
    report.scored, report.refused = report.states[store.SCORED], report.states[store.REFUSED]

    # The day's limit: of each student's entries in receipt order, the first per_day are scored, the rest refused.
    mine = collections.defaultdict(list)
    for row in rows:
        mine[row.student].append(row)
    for student, found in sorted(mine.items()):
        found.sort(key=lambda r: (r.received_at, r.id))
        for index, row in enumerate(found):
            want = store.SCORED if index < plan.per_day else store.REFUSED
            if row.state != want:
                problems.append(f"{row.folder}: {row.state}, not {want} (entry {index + 1} of the day)")
            elif want == store.REFUSED and "limit" not in row.reason:
                problems.append(f"{row.folder}: refused without naming the limit: {row.reason!r}")
        days = collections.Counter(r.day for r in found if r.state != store.REFUSED)
        if any(count > plan.per_day for count in days.values()):
            problems.append(f"{student}: over the day's limit: {dict(days)}")

    # Each scored once, with the result its case should give.
    scored = [row for row in rows if row.state == store.SCORED]
    for row in scored:
        result = store.decode_result(row)
        case = report.handed_in.get(row.folder, ("", ""))[1]
        if row.scored_at is None or row.seconds is None or not result:
            problems.append(f"{row.folder}: scored without a result")
            continue
        figures = [e.get("public_cost") for e in result.get("entries", []) if e.get("stage") == "scored"]
        has_figure = any(isinstance(f, float) and math.isfinite(f) for f in figures)
        if has_figure != (case in WITH_FIGURE):
            problems.append(f"{row.folder} ({case}): {'a' if has_figure else 'no'} figure: {_words(result)}")
    log_text = (root / "logs" / "live" / "service.log").read_text(errors="replace")
    lines = collections.Counter(re.findall(rf"scored (\S+)'s {re.escape(plan.assignment)} entry in", log_text))
    rows_per_student = collections.Counter(row.student for row in scored)
    if lines != rows_per_student:
        differ = sorted(s for s in set(lines) | set(rows_per_student) if lines[s] != rows_per_student[s])
        problems.append(
            f"the log's 'scored' lines do not match the scored rows for {len(differ)} students "
            f"({sum(lines.values())} lines, {len(scored)} rows), e.g. "
            + ", ".join(f"{s}: {lines[s]} lines, {rows_per_student[s]} rows" for s in differ[:3])
        )
    dropped = log_text.count("result dropped")
    if dropped:
        problems.append(f"{dropped} results dropped (scored twice)")
    output = service.output()
    for name, text in (("service.log", log_text), ("the service's output", output)):
        if "Traceback" in text:
            problems.append(f"a traceback in {name}: {text[text.index('Traceback') :][:600]}")
    report.log_warnings = len(re.findall(r" WARNING ", log_text))
    if any(code != 0 for code in service.exits):
        problems.append(f"the service's exit statuses: {service.exits} (None: killed, it did not stop on SIGTERM)")
    if service.left_running:
        problems.append(f"{service.left_running} stops left processes of the service running (its scorers)")
    problems.extend(board_problems(root, plan, secret))

    # Figures.
    if scored:
        latencies = [(row.scored_at - row.received_at).total_seconds() for row in scored]
        report.latency_median_s, report.latency_max_s = statistics.median(latencies), max(latencies)
        report.scoring_median_s = statistics.median(row.seconds for row in scored)
        window = (max(r.scored_at for r in scored) - min(r.received_at for r in rows)).total_seconds()
        report.throughput_per_min = len(scored) / (window / 60) if window > 0 else math.nan
        if stopped_at is not None:
            after = [r.scored_at for r in scored if r.scored_at > store.utc_naive(stopped_at)]
            if after:
                report.restart_gap_s = (min(after) - store.utc_naive(stopped_at)).total_seconds()


def _words(result: dict[str, t.Any]) -> str:
    problems = [result.get("problem")] + [e.get("problem") for e in result.get("entries", [])]
    return "; ".join(str(p) for p in problems if p)[:200] or json.dumps(result.get("entries"))[:200]


def board_problems(root: Path, plan: LoadPlan, secret: str) -> list[str]:
    """Where the published board and the store disagree: on each track, each student who has a figure is shown once,
    under their pseudonym, with their best public figure (counting = "best"), and nobody else."""
    from mlphys.live import publish, store

    folder = publish.live_dir(root / "exchange", COURSE, plan.assignment)
    try:
        board = json.loads((folder / "board" / "leaderboard.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"no board: {exc}"]
    rows = read_rows(root, plan.assignment)
    best: dict[tuple[str, str], float] = {}
    for row in rows:
        for entry in store.decode_result(row).get("entries", []):
            cost = entry.get("public_cost")
            if entry.get("stage") == "scored" and isinstance(cost, float) and math.isfinite(cost):
                key = (row.student, entry["track"])
                best[key] = min(best.get(key, math.inf), cost)
    pseudonyms = {}
    for student in {row.student for row in rows}:
        try:
            pseudonyms[student] = json.loads((folder / "students" / f"{student}.json").read_text())["pseudonym"]
        except (OSError, ValueError, KeyError) as exc:
            return [f"{student}'s history: {exc}"]
    problems = []
    if board.get("final"):
        problems.append("the board is final during the challenge")
    for track in {track for _, track in best} | set(board.get("boards", {})):
        shown = collections.Counter(r["name"] for r in board.get("boards", {}).get(track, []))
        if any(count > 1 for count in shown.values()):
            problems.append(f"{track}: a student shown more than once: {[n for n, c in shown.items() if c > 1][:3]}")
        figures = {r["name"]: r["public_cost"] for r in board.get("boards", {}).get(track, [])}
        want = {pseudonyms[s]: cost for (s, tr), cost in best.items() if tr == track}
        if set(figures) != set(want):
            problems.append(f"{track}: the board shows {len(figures)} students, the store {len(want)} with a figure")
        wrong = [n for n in set(figures) & set(want) if figures[n] != want[n]]
        if wrong:
            problems.append(f"{track}: {len(wrong)} students shown with another figure than their best public one")
    return problems


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = LoadPlan()
    parser.add_argument("--entries", type=int, default=defaults.entries)
    parser.add_argument("--students", type=int, default=defaults.students)
    parser.add_argument("--per-day", type=int, default=defaults.per_day)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--warm-kernels", type=int, default=defaults.warm_kernels)
    parser.add_argument("--poll", type=float, default=defaults.poll)
    parser.add_argument("--no-restart", dest="restart", action="store_false")
    parser.add_argument("--timeout", type=float, default=defaults.timeout)
    parser.add_argument("--keep", type=Path, help="make the course here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    plan = LoadPlan(
        entries=args.entries,
        students=args.students,
        per_day=args.per_day,
        workers=args.workers,
        warm_kernels=args.warm_kernels,
        poll=args.poll,
        restart=args.restart,
        timeout=args.timeout,
    )
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            root = args.keep.resolve()
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlphys-live-load-"))) / "course"
        report = run_load(plan, root)
        print(report.figures())
        if args.keep is not None:
            print(f"the course: {root}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
