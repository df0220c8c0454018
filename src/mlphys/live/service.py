"""``mlphys challenge serve``: the live challenge service.

One round of the service (:meth:`LiveService.round`):

1. puts back entries whose scorer died (:meth:`~mlphys.live.store.EntryStore.release_abandoned`);
2. takes in new submission folders from the exchange under each challenge's rules (:mod:`mlphys.live.intake`);
3. scores the next entry in fair order (:meth:`~mlphys.live.store.EntryStore.claim`), with warm sandboxed kernels
   (:mod:`mlphys.live.scoring`), and stores the result with its claim;
4. republishes the boards and the students' histories of every challenge whose entries changed
   (:mod:`mlphys.live.publish`);
5. once a challenge has ended and its last entry is scored: retrains the best counting entries where the challenge
   has a retraining check, publishes the final boards, and marks the challenge final.

Everything a round decides is in the store, so a service that is stopped (or dies) and started again goes on
where it was; several services (``--workers``, or one per machine against a PostgreSQL gradebook) share the work.
The gradebook's grades are never touched: the instructor's ``nbgrader autograde`` stays the system of record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import multiprocessing
import signal
import time
import typing as t
from pathlib import Path

from mlphys import assignments
from mlphys.assignments import Assignment
from mlphys.grading.challenge import EntryProblem, Scoring, TimeUp
from mlphys.grading.execute import SandboxedExecute
from mlphys.grading.parallel import prepare_gradebook, read_config
from mlphys.leaderboard.gather import Leaderboard
from mlphys.live import intake, publish, scoring, store
from mlphys.live.rules import Rules, load_rules

log = logging.getLogger("mlphys.live")
ABANDONED_AFTER = dt.timedelta(hours=1)  # a claim of a scorer on another machine that has not finished by then


@dataclasses.dataclass
class LiveCourse:
    """The course directory as the service sees it."""

    root: Path
    course_id: str
    exchange: Path
    db_url: str
    settings: scoring.Settings
    board_settings: Leaderboard
    rules: dict[str, Rules]

    @classmethod
    def load(cls, root: Path, only: t.Collection[str] = ()) -> LiveCourse:
        """The course in ``root``: nbgrader's configuration, and the challenges of ``challenges.toml`` (those in
        ``only``, where given).  A challenge named there must be an assignment with a challenge."""
        root = root.resolve()
        config = read_config(root)
        rules = load_rules(root)
        for assignment in list(rules):
            plugin = assignments.registry().get(assignment)
            if plugin is None or plugin.challenge is None:
                raise SystemExit(f"challenges.toml names {assignment!r}, which is no assignment with a challenge")
        missing = [a for a in only if a not in rules]
        if missing:
            raise SystemExit(f"challenges.toml has no rules for {', '.join(missing)}: add a table for each")
        if only:
            rules = {a: r for a, r in rules.items() if a in only}
        if not rules:
            raise SystemExit(f"no live challenge: {root / 'challenges.toml'} lists none")
        executor = SandboxedExecute(config=config)
        if not executor.challenge_secret:
            raise SystemExit("no course secret is set (MLPHYS_CHALLENGE_SECRET): challenges cannot be scored")
        exchange = Path(str(config.Exchange.get("root", "/srv/nbgrader/exchange")))
        course_id = str(config.CourseDirectory.get("course_id", "default_course"))
        return cls(
            root,
            course_id,
            exchange,
            prepare_gradebook(root),
            scoring.Settings(executor, executor.challenge_secret, root / "logs" / "live"),
            Leaderboard(config=config),
            rules,
        )

    @property
    def inbound(self) -> Path:
        return self.exchange / self.course_id / "inbound"

    def plugin(self, assignment: str) -> Assignment:
        return assignments.get(assignment)

    def live_dir(self, assignment: str) -> Path:
        return publish.live_dir(self.exchange, self.course_id, assignment)


class LiveService:
    """The rounds of one service process; see the module's text."""

    def __init__(
        self,
        course: LiveCourse,
        *,
        settle: float = 2.0,
        warm_kernels: int = 3,
        publish: bool = True,
        cluster: t.Any = None,
    ) -> None:
        self.course = course
        self.cluster = cluster  # a dask.distributed Client: entries are scored on its workers, several at once
        self._in_flight: dict[t.Any, store.LiveEntry] = {}
        self.settle = settle
        self.store = store.EntryStore(course.db_url)
        self.worker = store.this_worker()
        self.publishes = publish
        self._published: dict[str, tuple] = {}
        self._kernels = contextlib.ExitStack()
        self.kernels = self._warm_pool(warm_kernels if cluster is None else 0)

    def _warm_pool(self, size: int) -> t.Any:
        if size <= 0:
            return None
        from mlphys.grading.warm_kernels import WarmKernels

        return self._kernels.enter_context(WarmKernels(self.course.settings.isolation(), size=size))

    def close(self) -> None:
        self._kernels.close()
        self.store.close()

    def __enter__(self) -> LiveService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one round ------------------------------------------------------------------------------------

    def round(self) -> bool:
        """Do what there is to do now; True if an entry was scored (there may be more)."""
        for folder in self.store.release_abandoned(store.now_utc() - ABANDONED_AFTER, store.worker_alive):
            log.warning("%s was being scored by a service that stopped: queued again", folder)
        for seen in intake.take_in(self.store, self.course.inbound, self.course.rules, self.settle):
            log.info("received %s's %s entry %s", seen.student, seen.assignment, seen.folder)
        scored = self.score_on_cluster(self.cluster) if self.cluster is not None else self.score_next()
        if self.publishes:
            for assignment in self.course.rules:
                self.publish_if_changed(assignment)
                self.finalise_if_ended(assignment)
        return scored

    def score_next(self) -> bool:
        """Claim the next entry in fair order and score it here; False if none is ready."""
        row = self.store.claim(self.course.rules, store.now_utc(), self.worker)
        if row is None:
            return False
        job = EntryJob(str(self.course.root), row.assignment, row.folder, row.student, list(self.course.rules))
        self._finish(row, *score_job(job, self.kernels, self.course))
        if self.kernels is not None:
            self.kernels.refill()  # they boot while the service publishes and waits for the next entry
        return True

    def score_on_cluster(self, client: t.Any) -> bool:
        """Collect what the Dask cluster has scored, and keep as many entries in flight as it has threads; False if
        nothing is in flight or was collected."""
        if self._in_flight:  # a short wait for the first to finish, rather than a busy loop
            from distributed import wait

            with contextlib.suppress(TimeoutError):  # distributed's wait raises when none finished in time
                wait(list(self._in_flight), timeout=0.5, return_when="FIRST_COMPLETED")
        collected = [future for future in self._in_flight if future.done()]
        for future in collected:
            row = self._in_flight.pop(future)
            try:
                result, seconds = future.result()
            except Exception as exc:  # the worker itself failed (died, lost): the grader's failure, not the student's
                log.error("scoring %s on the cluster failed: %s", row.folder, exc)
                result, seconds = grader_failure(exc), 0.0
            self._finish(row, result, seconds)
        slots = sum(client.nthreads().values()) or 1
        while len(self._in_flight) < slots:
            row = self.store.claim(self.course.rules, store.now_utc(), self.worker)
            if row is None:
                break
            job = EntryJob(str(self.course.root), row.assignment, row.folder, row.student, list(self.course.rules))
            self._in_flight[client.submit(score_job, job, pure=False, key=f"live-{row.id}-{row.folder}")] = row
        return bool(collected or self._in_flight)

    def _finish(self, row: store.LiveEntry, result: dict[str, t.Any], seconds: float) -> None:
        if self.store.finish(row.id, self.worker, result, seconds):
            log.info("scored %s's %s entry in %.2f s: %s", row.student, row.assignment, seconds, _summary(result))
        else:
            log.warning("%s: the claim was taken back while it was scored; result dropped", row.folder)

    # ---- publishing -------------------------------------------------------------------------------------

    def publish_if_changed(self, assignment: str) -> None:
        now = store.signature(self.store, assignment)
        if self._published.get(assignment) == now:
            return
        self.publish(assignment, final=store.is_final(self.store, assignment))
        self._published[assignment] = now

    def publish(self, assignment: str, *, final: bool) -> None:
        """Write the boards and every student's history of ``assignment``."""
        rules, challenge = self.course.rules[assignment], self.course.plugin(assignment).challenge
        assert challenge is not None
        rows = self.store.entries(assignment)
        folder = self.course.live_dir(assignment)
        secret = self.course.settings.secret
        publish.publish_board(folder, rows, rules, challenge, secret, final=final, names=self._names(rows))
        publish.publish_histories(folder, sorted({r.student for r in rows}), rows, rules, challenge, secret, final)
        log.info("%s: %s boards published (%d entries)", assignment, "final" if final else "public", len(rows))

    def _names(self, rows: list[store.LiveEntry]) -> dict[str, str]:
        """The names of students who opted in, from nbgrader's gradebook (their id where it has none)."""
        from nbgrader.api import Gradebook, MissingEntry

        wanted = {r.student for r in rows if publish.decode_result(r).get("show_name") is True}
        names = {}
        if not wanted:
            return names
        with Gradebook(self.course.db_url) as gb:
            for student in wanted:
                try:
                    record = gb.find_student(student)
                    names[student] = " ".join(p for p in (record.first_name, record.last_name) if p) or student
                except MissingEntry:
                    names[student] = student
        return names

    # ---- the end ------------------------------------------------------------------------------------------

    def finalise_if_ended(self, assignment: str) -> bool:
        """After the end, once every entry received in time is scored: the retraining check, the final boards."""
        rules = self.course.rules[assignment]
        if not rules.has_ended(dt.datetime.now(dt.UTC)) or store.is_final(self.store, assignment):
            return False
        store.refuse_waiting(
            self.store, assignment, store.utc_naive(rules.end), "the challenge ended before its day came: not scored."
        )
        rows = self.store.entries(assignment)
        if any(r.state in (store.QUEUED, store.SCORING) for r in rows):
            return False
        self.retrain_best(assignment, rows)
        self.publish(assignment, final=True)
        store.mark_final(self.store, assignment)
        self._published[assignment] = store.signature(self.store, assignment)
        log.info("%s: the challenge has ended; final boards published", assignment)
        return True

    def retrain_best(self, assignment: str, rows: list[store.LiveEntry]) -> None:
        """Retrain the ``retrain_top`` best counting entries of each board, where the challenge has the check."""
        rules, challenge = self.course.rules[assignment], self.course.plugin(assignment).challenge
        assert challenge is not None
        if not challenge.has_retraining_check or rules.retrain_top <= 0:
            return
        board = self.course.board_settings
        sign = -1 if challenge.higher_is_better else 1
        by_track: dict[str, list[publish.Candidate]] = {}
        for (_, track), found in publish.candidates(rows, challenge).items():
            shown = publish.shown_entry(rules, challenge, found, final=True)
            if shown is not None:
                by_track.setdefault(track, []).append(shown)
        isolation = dataclasses.replace(self.course.settings.isolation(), timeout=board.retrain_timeout)
        for track, shown in sorted(by_track.items()):
            for candidate in sorted(shown, key=lambda c: sign * c.private)[: rules.retrain_top]:
                if publish.retrain_state(candidate.entry)[0] != "unchecked":
                    continue
                self._retrain(assignment, track, candidate, isolation, board)

    def _retrain(
        self, assignment: str, track: str, candidate: publish.Candidate, isolation: t.Any, board: Leaderboard
    ) -> None:
        challenge = self.course.plugin(assignment).challenge
        assert challenge is not None
        log.info("retraining %s's %s entry (%s) ...", candidate.row.student, track, candidate.row.folder)
        context = Scoring(
            challenge,
            self.course.settings.secret,
            isolation,
            candidate.result.get("cells", {}),
            deadline=time.monotonic() + board.retrain_timeout,
            retrain_band=board.retrain_band(assignment, challenge),
        )
        try:
            verdict = challenge.retrain(track, candidate.public, context)
            status, cost, message = verdict.status, verdict.retrained_cost, verdict.message
        except (EntryProblem, TimeUp) as exc:
            status, cost, message = "timed out", None, str(exc)
        log.info("  %s: %s", status, message)
        candidate.entry["retrain"] = {
            "status": status,
            "cost": cost,
            "message": message,
            "weights_sha256": candidate.entry.get("weights_sha256"),
        }
        store.update_result(self.store, candidate.row.id, candidate.result)

    # ---- running ------------------------------------------------------------------------------------------

    def run(self, poll: float = 5.0, once: bool = False) -> None:
        """Rounds until stopped (SIGINT or SIGTERM: the entry being scored is finished first); with ``once``, until
        nothing is left to do now."""
        stopping: list[int] = []

        def stop(signum: int, frame: t.Any) -> None:
            stopping.append(signum)

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stopping:
                busy = self.round()
                if once and not busy:
                    return
                if not busy:
                    _sleep(poll, stopping)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if stopping:
                log.info("stopped (%s)", signal.Signals(stopping[0]).name)


@dataclasses.dataclass(frozen=True)
class EntryJob:
    """One claimed entry to score, as plain data (it travels to a Dask worker, which reads the course itself)."""

    root: str
    assignment: str
    folder: str
    student: str
    challenges: list[str]


@functools.cache
def _course(root: str, challenges: tuple[str, ...]) -> LiveCourse:
    return LiveCourse.load(Path(root), challenges)


def score_job(job: EntryJob, kernels: t.Any = None, course: LiveCourse | None = None) -> tuple[dict[str, t.Any], float]:
    """Score one entry (here, or on a Dask worker, where the course is read from ``job.root`` once per process);
    the result the store keeps and the seconds it took.  Never raises for a student's entry."""
    course = course or _course(job.root, tuple(job.challenges))
    started = time.monotonic()
    try:
        result = scoring.score_entry(
            course.plugin(job.assignment), course.inbound / job.folder, job.student, course.settings, kernels
        )
    except Exception as exc:  # the grader's own failure: that entry is told so, the service goes on
        log.exception("scoring %s failed", job.folder)
        result = grader_failure(exc)
    return result, time.monotonic() - started


def grader_failure(exc: BaseException) -> dict[str, t.Any]:
    return {
        "problem": f"The grader failed while it scored this entry ({type(exc).__name__}), an error of the grader's "
        "and not a verdict on your work: tell your instructor.",
        "entries": [],
    }


def _sleep(seconds: float, stopping: list[int]) -> None:
    end = time.monotonic() + seconds
    while not stopping and time.monotonic() < end:
        time.sleep(min(0.2, end - time.monotonic()))


def _summary(result: dict[str, t.Any]) -> str:
    if result.get("problem"):
        return "not scored"
    parts = []
    for entry in result.get("entries", []):
        figure = entry.get("public_cost")
        parts.append(f"{entry.get('track')} {figure:.4g}" if isinstance(figure, float) else f"{entry.get('track')} -")
    return ", ".join(parts) or "no entry"


def scorer_process(root: str, only: list[str], warm_kernels: int, poll: float) -> None:
    """An extra scorer (``--workers``): claims and scores entries; intake and publishing stay with the service."""
    from mlphys.live.cli import _logging  # a spawned process has none of the service's handlers: its log too

    _logging(Path(root))
    course = LiveCourse.load(Path(root), only)
    with LiveService(course, warm_kernels=warm_kernels, publish=False) as service:
        stopping: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service stops its scorers itself
        while not stopping:
            if not service.score_next():
                _sleep(poll, stopping)


def serve(
    root: Path,
    only: t.Collection[str] = (),
    *,
    poll: float = 5.0,
    once: bool = False,
    workers: int = 1,
    warm_kernels: int = 3,
    settle: float = 2.0,
    scheduler: str | None = None,
) -> None:
    """``mlphys challenge serve``: the service, with ``workers - 1`` extra scorers beside it, or scoring on the Dask
    cluster whose scheduler is at ``scheduler`` (its workers read the course from the same path)."""
    if scheduler is not None:
        from distributed import Client

        course = LiveCourse.load(root, only)
        with Client(scheduler) as client, LiveService(course, settle=settle, cluster=client) as service:
            log.info("scoring on the Dask cluster at %s (%d threads)", scheduler, sum(client.nthreads().values()))
            service.run(poll=poll, once=once)
        return
    course = LiveCourse.load(root, only)
    for assignment, rules in course.rules.items():
        log.info(
            "%s: live from %s to %s, entries per day: %s, counting: %s; boards in %s",
            assignment,
            rules.start,
            rules.end,
            rules.entries_per_day or "no limit",
            rules.counting,
            course.live_dir(assignment) / "board",
        )
    context = multiprocessing.get_context("spawn")
    scorers = [
        context.Process(target=scorer_process, args=(str(root), list(only), warm_kernels, poll), daemon=True)
        for _ in range(max(workers, 1) - 1)
    ]
    for process in scorers:
        process.start()
    try:
        with LiveService(course, settle=settle, warm_kernels=warm_kernels) as service:
            service.run(poll=poll, once=once)
    finally:
        for process in scorers:
            process.terminate()
        for process in scorers:
            process.join(30)
