"""Live challenges (``mlphys.live``): the rules file, admission under the rules, the store's claims, the counting
rules, and the service end to end on real entries in a course's exchange, beside nbgrader's own autograde."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from mlphys import assignments
from mlphys.demo.case import Materials
from mlphys.live import intake, publish, rules, service, store

REPO = Path(__file__).resolve().parent.parent
UTC = dt.UTC
T0 = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))

EXAMPLE = rules.__doc__.split("::")[1].split("\n\nA student")[0]


def test_the_documented_example_of_challenges_toml_parses() -> None:
    found = rules.parse_rules(EXAMPLE)["03_autoencoder_challenge"]
    assert found.entries_per_day == 5 and found.over_limit == "next day" and found.counting == "best"
    assert found.end - found.start == dt.timedelta(days=14, hours=9)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            '["a"]\nstart = 2026-12-01T09:00:00+01:00\nend = 2026-12-01T08:00:00+01:00\n',
            "line 3: a.end: must come after",
        ),
        ('["a"]\nstart = 2026-12-01T09:00:00+01:00\nend = 2026-12-02T08:00:00+01:00\nper_day = 3\n', "did you mean"),
        ('["a"]\nstart = 2026-12-01T09:00:00\nend = 2026-12-02T08:00:00+01:00\n', "has no UTC offset"),
        ('["a"]\nstart = 2026-12-01T09:00:00Z\nend = 2026-12-02T08:00:00Z\ncounting = "first"\n', "must be one of"),
        ('["a"]\nstart = 2026-12-01T09:00:00Z\nend = 2026-12-02T08:00:00Z\nentries_per_day = 0\n', "at least 1"),
    ],
)
def test_a_wrong_rules_file_is_refused_naming_the_line_and_key(text: str, words: str) -> None:
    with pytest.raises(rules.RulesError, match=words):
        rules.parse_rules(text)


def make_rules(**changes: object) -> rules.Rules:
    base = rules.Rules("03_autoencoder_challenge", T0, T0 + dt.timedelta(days=3), entries_per_day=2)
    return rules.Rules(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def seen(at: dt.datetime, student: str = "alice", folder: str = "f") -> store.Seen:
    return store.Seen("03_autoencoder_challenge", student, folder, store.utc_naive(at))


def test_admission_follows_the_day_limit_the_start_and_the_end() -> None:
    from collections import Counter

    day = T0.date().isoformat()
    assert intake.admit(make_rules(), seen(T0 + dt.timedelta(hours=1)), Counter()).state == store.QUEUED
    waiting = intake.admit(make_rules(), seen(T0 + dt.timedelta(hours=1)), Counter({day: 2}))
    assert waiting.state == store.QUEUED and waiting.not_before == make_rules().day_start(T0.date() + dt.timedelta(1))
    assert "limit of 2" in waiting.reason and "scored from" in waiting.reason
    refused = intake.admit(make_rules(over_limit="refuse"), seen(T0 + dt.timedelta(hours=1)), Counter({day: 2}))
    assert refused.state == store.REFUSED and "not scored" in refused.reason
    late = intake.admit(make_rules(), seen(T0 + dt.timedelta(days=3, seconds=1)), Counter())
    assert late.state == store.REFUSED and "after the challenge ended" in late.reason
    early = intake.admit(make_rules(), seen(T0 - dt.timedelta(hours=1)), Counter())
    assert early.state == store.QUEUED and early.not_before == T0
    # the limit reached on the last days: no day left before the end (the morning of the 9th)
    full = Counter({"2026-12-08": 2, "2026-12-09": 2})
    last = intake.admit(make_rules(), seen(T0 + dt.timedelta(days=2, hours=1)), full)
    assert last.state == store.REFUSED and "ends before another day" in last.reason


@pytest.fixture
def entries(tmp_path: Path) -> store.EntryStore:
    with store.EntryStore(f"sqlite:///{tmp_path / 'gradebook.db'}") as opened:
        yield opened


def test_claims_are_fair_between_students_and_never_taken_twice(entries: store.EntryStore) -> None:
    now = store.utc_naive(T0)
    for index in range(3):  # alice hands in three entries before bob's one
        entries.add(seen(T0 + dt.timedelta(seconds=index), "alice", f"a{index}"), day="d", state=store.QUEUED)
    entries.add(seen(T0 + dt.timedelta(seconds=5), "bob", "b0"), day="d", state=store.QUEUED)
    assert not entries.add(seen(T0, "alice", "a0"), day="d", state=store.QUEUED)  # the same folder again
    order = []
    while (row := entries.claim(["03_autoencoder_challenge"], now, "host:1")) is not None:
        order.append(row.folder)
        assert entries.finish(row.id, "host:1", {"entries": []}, 0.1)
        assert not entries.finish(row.id, "host:1", {"entries": []}, 0.1)  # stored once
    assert order == ["a0", "b0", "a1", "a2"]


def test_entries_of_a_scorer_that_died_are_scored_again_and_its_late_result_is_dropped(
    entries: store.EntryStore,
) -> None:
    entries.add(seen(T0, "alice", "a0"), day="d", state=store.QUEUED)
    row = entries.claim(["03_autoencoder_challenge"], store.utc_naive(T0), "gone:1")
    assert row is not None
    released = entries.release_abandoned(store.utc_naive(T0) - dt.timedelta(hours=1), lambda worker: worker != "gone:1")
    assert released == ["a0"]
    again = entries.claim(["03_autoencoder_challenge"], store.utc_naive(T0), "here:2")
    assert again is not None and again.id == row.id
    assert not entries.finish(row.id, "gone:1", {"entries": []}, 1.0)  # the dead scorer's claim is void
    assert entries.finish(row.id, "here:2", {"entries": []}, 1.0)


def candidate(folder: str, public: float, private: float, minutes: int, count_this: bool = False) -> publish.Candidate:
    row = store.LiveEntry(
        folder=folder, student="alice", received_at=store.utc_naive(T0) + dt.timedelta(minutes=minutes)
    )
    entry = {"track": "MEDIUM/NORMAL", "stage": "scored", "public_cost": public, "private_cost": private}
    return publish.Candidate(row, {"count_this": count_this, "entries": [entry]}, entry)


def test_the_counting_rules_pick_the_latest_the_best_public_or_the_marked_entries() -> None:
    challenge = assignments.get("03_autoencoder_challenge").challenge
    history = [candidate("good", 0.01, 0.03, 0), candidate("latest", 0.05, 0.02, 10)]
    pick = {
        counting: [c.row.folder for c in publish.counting(make_rules(counting=counting), challenge, history)]
        for counting in ("latest", "best", "selected")
    }
    assert pick == {"latest": ["latest"], "best": ["good"], "selected": ["good"]}  # none marked: the best public
    marked = [candidate("a", 0.01, 0.03, 0, True), candidate("b", 0.02, 0.02, 5, True), candidate("c", 0.0, 0.0, 9)]
    chosen = publish.counting(make_rules(counting="selected", selected=2), challenge, marked)
    assert [c.row.folder for c in chosen] == ["a", "b"]
    # the public board shows the best public of those; the final board the best private
    assert publish.shown_entry(make_rules(counting="selected", selected=2), challenge, marked, False).row.folder == "a"
    assert publish.shown_entry(make_rules(counting="selected", selected=2), challenge, marked, True).row.folder == "b"


# ---- the service, end to end ------------------------------------------------------------------------------

CHALLENGE = "03_autoencoder_challenge"


def hand_in(inbound: Path, student: str, case_student: str, index: int, assignment: str = CHALLENGE) -> Path:
    """The files of the demo case ``case_student``, handed in by ``student`` as nbgrader's submit lays them out."""
    plugin = assignments.get(assignment)
    materials = Materials(REPO, assignment, plugin.notebook)
    (case,) = [c for c in plugin.cases(materials) if c.student == case_student]
    folder = inbound / f"{student}+{assignment}+2026-12-06 10:00:{index:02d}.000000 UTC+{index:04x}"
    folder.mkdir(parents=True)
    case.write(folder, materials)
    return folder


def write_rules(root: Path, start: dt.datetime, end: dt.datetime, assignment: str = CHALLENGE, **extra: object) -> None:
    settings = "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
    (root / "challenges.toml").write_text(
        f'["{assignment}"]\nstart = {start.isoformat()}\nend = {end.isoformat()}\n{settings}'
    )


def live_course(
    root: Path, start: dt.datetime, end: dt.datetime, assignment: str = CHALLENGE, **extra: object
) -> service.LiveCourse:
    """A course directory with the repository's configuration and the rules of one live challenge."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    write_rules(root, start, end, assignment, **extra)
    return service.LiveCourse.load(root)


@pytest.fixture
def secret() -> str:
    """The tests' course secret (conftest's: the demo's, unless the environment sets one), as the full demo uses."""
    return os.environ["MLPHYS_CHALLENGE_SECRET"]


def test_entries_are_scored_as_they_arrive_within_the_limit_and_the_final_board_comes_at_the_end(
    tmp_path: Path, secret: str
) -> None:
    now = dt.datetime.now(UTC)
    course = live_course(
        tmp_path / "course", now - dt.timedelta(hours=1), now + dt.timedelta(days=2), entries_per_day=1
    )
    inbound = course.inbound
    hand_in(inbound, "alice", "ref_solution", 0)
    hand_in(inbound, "bob", "undertrained", 1)
    hand_in(inbound, "bob", "ref_solution", 2)  # over bob's limit of one a day: waits for tomorrow
    hand_in(inbound, "carol", "blank_release", 3)  # no weights file: scored, with the reason
    with service.LiveService(course, settle=0, warm_kernels=0) as live:
        live.run(once=True)
        rows = {row.folder.split("+")[0] + row.folder[-1]: row for row in live.store.entries(CHALLENGE)}
    assert sorted((k, r.state) for k, r in rows.items()) == [
        ("alice0", "scored"),
        ("bob1", "scored"),
        ("bob2", "queued"),
        ("carol3", "scored"),
    ]
    board = json.loads((course.live_dir(CHALLENGE) / "board" / "leaderboard.json").read_text())
    ranked = board["boards"]["MEDIUM/NORMAL"]
    assert [row["rank"] for row in ranked] == [1, 2] and not board["final"]
    assert all("private_cost" not in row for row in ranked)  # nobody's private figure during the challenge
    students = course.live_dir(CHALLENGE) / "students"
    bob = json.loads((students / "bob.json").read_text())
    assert [e["status"] for e in bob["entries"]] == ["scored", "waiting"]
    assert "limit of 1" in bob["entries"][1]["reason"]
    assert "private" not in json.dumps(bob["entries"])
    carol = json.loads((students / "carol.json").read_text())
    assert "no weights file" in json.dumps(carol["entries"])
    assert oct(os.stat(students).st_mode & 0o777) == "0o711"  # nobody lists the others' files

    # The end: the rules' end moved into the past; the service publishes the final board, ranked by the private split
    course.rules[CHALLENGE] = rules.Rules(
        **{**course.rules[CHALLENGE].__dict__, "end": now - dt.timedelta(seconds=1), "retrain_top": 0}
    )
    with service.LiveService(course, settle=0, warm_kernels=0) as live:
        live.run(once=True)
        assert store.is_final(live.store, CHALLENGE)
        waited = [row for row in live.store.entries(CHALLENGE) if row.folder.endswith("0002")]
        assert waited[0].state == store.REFUSED and "ended before its day" in waited[0].reason
    board = json.loads((course.live_dir(CHALLENGE) / "board" / "leaderboard.json").read_text())
    assert board["final"] and all("private_cost" in row for row in board["boards"]["MEDIUM/NORMAL"])
    alice_history = json.loads((students / "alice.json").read_text())
    assert alice_history["final"] and "private" in alice_history["entries"][0]["tracks"]["MEDIUM/NORMAL"]


def test_the_live_store_lives_beside_nbgrader_s_tables_in_the_gradebook(tmp_path: Path, secret: str) -> None:
    now = dt.datetime.now(UTC)
    course = live_course(tmp_path / "course", now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    with service.LiveService(course, settle=0, warm_kernels=0) as live:
        live.run(once=True)
    with sqlite3.connect(tmp_path / "course" / "gradebook.db") as db:
        tables = {name for (name,) in db.execute("select name from sqlite_master where type='table'")}
    assert {"mlphys_live_entry", "mlphys_live_final", "assignment", "submitted_assignment"} <= tables


def test_live_figures_are_those_nbgrader_s_autograde_recorded_for_the_same_files(
    full_demo: object, tmp_path: Path, secret: str
) -> None:
    from nbgrader.api import Gradebook

    from mlphys.grading import records

    now = dt.datetime.now(UTC)
    course = live_course(tmp_path / "course", now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    kinds = ("ref_solution", "undertrained")
    for index, kind in enumerate(kinds):
        hand_in(course.inbound, kind, kind, index)
    with service.LiveService(course, settle=0, warm_kernels=0) as live:
        live.run(once=True)
        live_entries = {row.student: store.decode_result(row)["entries"] for row in live.store.entries(CHALLENGE)}
    challenge = assignments.get(CHALLENGE).challenge
    with Gradebook(f"sqlite:///{full_demo.root / 'gradebook.db'}") as gb:  # type: ignore[attr-defined]
        graded = records.load_records(gb, CHALLENGE, challenge.key)
    for kind in kinds:
        ((recorded, _),) = [value for (student, _), value in graded.items() if student == kind]
        fields = ("track", "public_cost", "private_cost", "detail", "weights_sha256")
        assert [{f: e[f] for f in fields} for e in live_entries[kind]] == [
            {f: e[f] for f in fields} for e in recorded["entries"]
        ]


def test_a_dask_cluster_scores_the_entries_the_service_claims(tmp_path: Path, secret: str) -> None:
    """`mlphys challenge serve --scheduler`: the service claims, the cluster's workers score (reading the course from
    its path), the service stores each result once; the figures are those scored here."""
    import dask
    from distributed import Client, LocalCluster

    now = dt.datetime.now(UTC)
    course = live_course(tmp_path / "course", now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    for index, (student, kind) in enumerate(
        [("alice", "ref_solution"), ("bob", "undertrained"), ("carol", "ref_solution")]
    ):
        hand_in(course.inbound, student, kind, index)
    with (
        dask.config.set({"distributed.worker.daemon": False}),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
        service.LiveService(course, settle=0, cluster=client) as live,
    ):
        live.run(once=True, poll=0.1)
        rows = live.store.entries(CHALLENGE)
    assert [row.state for row in rows] == ["scored"] * 3
    costs = {row.student: store.decode_result(row)["entries"][0]["public_cost"] for row in rows}
    assert costs["alice"] == costs["carol"] < costs["bob"]  # the same weights, the same figure, on any worker


def test_the_service_and_the_instructor_s_autograde_share_the_gradebook_without_harm(
    tmp_path: Path, secret: str
) -> None:
    """`mlphys challenge serve` scores entries while `mlphys autograde` grades another assignment into the same
    SQLite gradebook: both finish, every grade is as expected, every entry is scored once."""
    import io
    import subprocess
    import sys
    import time

    from mlphys.grading import parallel
    from test_parallel import ASSIGNMENT, small_course

    root = tmp_path / "course"
    cases = small_course(root, ["ref_solution", "blank_release", "mistake_sigmoid_sign"])
    now = dt.datetime.now(UTC)
    write_rules(root, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    course = service.LiveCourse.load(root)
    for index, (student, kind) in enumerate(
        [("ann", "ref_solution"), ("ben", "undertrained"), ("cem", "ref_solution")]
    ):
        hand_in(course.inbound, student, kind, index)
    serve = [sys.executable, "-m", "mlphys.cli", "challenge", "serve", "--root", str(root), "--poll", "0.2"]
    server = subprocess.Popen([*serve, "--settle", "0", "--warm-kernels", "0"], stderr=subprocess.PIPE, text=True)
    try:
        results = parallel.autograde(root, ASSIGNMENT, workers=1, out=io.StringIO())
        deadline = time.monotonic() + 120
        with store.EntryStore(course.db_url) as entries:
            while time.monotonic() < deadline and any(r.state != store.SCORED for r in entries.entries(CHALLENGE)):
                time.sleep(0.5)
            rows = entries.entries(CHALLENGE)
    finally:
        server.terminate()
        log = server.communicate(timeout=60)[1]
    assert not [r for r in results if r.failed], [(r.student, r.problem) for r in results]
    grades = {r.student: r for r in results}
    assert set(grades) == set(cases)
    with sqlite3.connect(root / "gradebook.db") as db:
        scores = dict(
            db.execute(
                "SELECT sa.student_id, SUM(g.auto_score) FROM grade g JOIN submitted_notebook sn ON g.notebook_id = "
                "sn.id JOIN submitted_assignment sa ON sn.assignment_id = sa.id GROUP BY sa.student_id"
            )
        )
    assert scores == {student: case.expected_points for student, case in cases.items()}
    assert [r.state for r in rows] == ["scored"] * 3 and "Traceback" not in log
    assert log.count("scored ") == 3  # each entry once


def test_an_entry_whose_tracks_cell_fails_on_its_own_is_told_so_and_the_queue_goes_on(
    tmp_path: Path, secret: str
) -> None:
    import nbformat

    now = dt.datetime.now(UTC)
    course = live_course(tmp_path / "course", now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    broken = hand_in(course.inbound, "dora", "ref_solution", 0)
    path = broken / f"{assignments.get(CHALLENGE).notebook}.ipynb"
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("# Your entry")]
    cell.source = re.sub(r"^TRACKS = .*$", "TRACKS = [my_favourite_track]", cell.source, flags=re.M)
    nbformat.write(nb, path)
    (broken / "extra").symlink_to("/etc/passwd")  # a link among the files: never followed
    hand_in(course.inbound, "emil", "ref_solution", 1)
    with service.LiveService(course, settle=0, warm_kernels=0) as live:
        live.run(once=True)
        rows = {row.student: store.decode_result(row) for row in live.store.entries(CHALLENGE)}
    assert "Your cell that sets TRACKS raised NameError" in str(rows["dora"]), rows["dora"]
    assert rows["emil"]["entries"][0]["stage"] == "scored"
