"""The challenge leaderboard: ranking, privacy of the private split and of student ids, and the page as a browser
shows it."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import math
import random
from pathlib import Path

import numpy
import pytest

from conftest import CHROMEDRIVER, CHROMIUM, headless_chromium
from mlphys.assignments.autoencoder_challenge.challenge import CHALLENGE
from mlphys.leaderboard import TIE_BREAK, BoardSpec, Entry, pseudonym, write_boards
from mlphys.leaderboard import rank as rank_tracks
from mlphys.leaderboard.pseudonyms import shown_names

SALT = "course-secret-2025"
TITLE = "Grand Autoencoder Challenge"
T0 = datetime.datetime(2025, 6, 1, 12, 0)
XSS_SCRIPT = "<script>window.__pwned = 1; alert(1)</script>"
XSS_IMG = '<img src=x onerror="window.__pwned = 2">'


def circles(m: int, size: int = 27) -> numpy.ndarray:
    """m filled circles, pixel values 0 or 1, like the challenge's test images."""
    y, x = numpy.mgrid[:size, :size]
    images = [((x - 6 - 2 * i) ** 2 + (y - 13) ** 2 <= (4 + i) ** 2).astype(float) for i in range(m)]
    return numpy.stack(images)


ORIGINALS = circles(4)
SPEC = dataclasses.replace(BoardSpec.of(CHALLENGE), title="Grand Autoencoder Challenge")
TRACKS = SPEC.tracks


def rank(entries: list[Entry], *, final: bool, salt: str | None = None) -> dict:
    return rank_tracks(entries, TRACKS, final=final, salt=salt)


def entry(
    student: str,
    public: float,
    private: float,
    *,
    track: str = "MEDIUM/NORMAL",
    minute: int | None = 0,
    name: str | None = None,
    retrain: str = "unchecked",
    retrained_cost: float | None = None,
    decodes: bool = True,
) -> Entry:
    """An entry submitted ``minute`` minutes after noon (None: time unknown), decoding the originals a bit blurred."""
    blur = (sum(student.encode()) % 97) / 400
    return Entry(
        student=student,
        name=name,
        track=track,
        detail="9" if track.startswith("MEDIUM") else "3",
        public_cost=public,
        private_cost=private,
        submitted_at=None if minute is None else T0 + datetime.timedelta(minutes=minute),
        retrain=retrain,
        retrained_cost=retrained_cost,
        picture=ORIGINALS * (1 - blur) + blur / 2 if decodes else None,
    )


def cohort() -> list[Entry]:
    """Every situation a board meets. Private costs are distinctive numbers that appear nowhere else."""
    return [
        # MEDIUM/NORMAL: the public and private orders differ; a tie on the public cost broken by time.
        entry("stu_alpha01", 0.0125, 0.7316492, minute=30, name="Ada Lovelace"),
        entry("stu_bravo02", 0.0125, 0.6198473, minute=10),
        entry("stu_charl03", 0.0310, 0.5087361, minute=5, name=XSS_SCRIPT),
        entry("stu_delta04", 0.0090, 0.8429157, minute=50, retrain="flagged", retrained_cost=0.2),
        entry("stu_echoo05", math.nan, math.nan, minute=1),
        entry("stu_foxtr06", 0.0400, 0.9537014, minute=None, retrain="reproduced", retrained_cost=0.0412),
        # MEDIUM/LONG: equal cost and time, so the shown names decide; one submission time unknown.
        entry("stu_golfx07", 0.0200, 0.4376128, track="MEDIUM/LONG", name="Zoe Zed"),
        entry("stu_hotel08", 0.0200, 0.3265917, track="MEDIUM/LONG", name="Abe Able"),
        entry("stu_india09", 0.0200, 0.2154836, track="MEDIUM/LONG", minute=None, name=XSS_IMG),
        # HARD/NORMAL: an infinite cost, and a name a spreadsheet would run as a formula.
        entry("stu_julie10", 0.0500, 0.1043725, track="HARD/NORMAL", name="=HYPERLINK(1)"),
        entry("stu_kilo011", math.inf, math.inf, track="HARD/NORMAL"),
        # HARD/LONG: a single entry without reconstructions.
        entry("stu_lima012", 0.0600, 0.0932614, track="HARD/LONG", decodes=False),
    ]


PRIVATE = [e.private_cost for e in cohort() if math.isfinite(e.private_cost)]


def build(out: Path, *, final: bool, entries: list[Entry] | None = None) -> dict[str, Path]:
    entries = cohort() if entries is None else entries
    return write_boards(entries, out, spec=SPEC, originals=ORIGINALS, final=final, salt=SALT)


@pytest.fixture(scope="module")
def public_board(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("public"), final=False)


@pytest.fixture(scope="module")
def final_board(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("final"), final=True)


def names(boards: dict, track: str) -> list[str]:
    return [row.name for row in boards[track]]


def texts(paths: dict[str, Path]) -> dict[str, str]:
    return {kind: path.read_text(encoding="utf-8") for kind, path in paths.items()}


def number_spellings(value: float) -> set[str]:
    """How a cost could be written in an export: exactly, or rounded to 3 to 8 significant digits."""
    return {repr(value)} | {f"{value:.{d}g}" for d in range(3, 9)} | {f"{value:.{d}e}" for d in range(2, 8)}


# --- ranking ---------------------------------------------------------------------------------------------------


def test_public_board_ranks_by_public_cost_and_breaks_ties_by_earlier_submission() -> None:
    board = rank(cohort(), final=False, salt=SALT)["MEDIUM/NORMAL"]
    bravo, foxtrot, echo, delta = (
        pseudonym(s, SALT) for s in ("stu_bravo02", "stu_foxtr06", "stu_echoo05", "stu_delta04")
    )
    assert [r.name for r in board] == [bravo, "Ada Lovelace", XSS_SCRIPT, foxtrot, delta, echo]
    assert [r.rank for r in board] == [1, 2, 3, 4, None, None]
    assert all(r.private_cost is None for r in board)  # a public board's rows do not even carry it


def test_equal_costs_and_times_fall_back_to_the_shown_name_and_a_missing_time_counts_as_latest() -> None:
    boards = rank(cohort(), final=False, salt=SALT)
    assert names(boards, "MEDIUM/LONG") == ["Abe Able", "Zoe Zed", XSS_IMG]
    assert [r.rank for r in boards["MEDIUM/LONG"]] == [1, 2, 3]


def test_final_board_ranks_by_private_cost_and_shows_both() -> None:
    board = rank(cohort(), final=True, salt=SALT)["MEDIUM/NORMAL"]
    order = ["stu_charl03", "stu_bravo02", "stu_alpha01", "stu_foxtr06", "stu_delta04", "stu_echoo05"]
    assert [r.student for r in board] == order
    assert [r.private_cost for r in board[:3]] == [0.5087361, 0.6198473, 0.7316492]
    assert [r.public_cost for r in board[:3]] == [0.0310, 0.0125, 0.0125]
    assert names(rank(cohort(), final=True, salt=SALT), "MEDIUM/LONG") == [XSS_IMG, "Abe Able", "Zoe Zed"]


def test_flagged_entries_are_shown_unranked_after_ranked_ones_and_invalid_costs_last() -> None:
    for final in (False, True):
        board = rank(cohort(), final=final, salt=SALT)["MEDIUM/NORMAL"]
        assert [(r.student, r.rank, r.status) for r in board[-2:]] == [
            ("stu_delta04", None, "flagged"),  # the best public cost, but flagged by the retraining check
            ("stu_echoo05", None, "invalid cost"),
        ]
        hard = rank(cohort(), final=final, salt=SALT)["HARD/NORMAL"]
        assert [(r.student, r.rank) for r in hard] == [("stu_julie10", 1), ("stu_kilo011", None)]


def test_ranking_does_not_depend_on_input_order() -> None:
    shuffled = cohort()
    random.Random(3).shuffle(shuffled)
    for final in (False, True):
        assert rank(shuffled, final=final, salt=SALT) == rank(cohort(), final=final, salt=SALT)


def test_every_track_has_a_board_in_the_documented_order() -> None:
    assert list(rank([], final=False)) == list(TRACKS) == ["MEDIUM/NORMAL", "MEDIUM/LONG", "HARD/NORMAL", "HARD/LONG"]


def test_malformed_entries_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="unknown track"):
        rank([entry("stu_x", 0.1, 0.2, track="EASY/NORMAL")], final=False)
    with pytest.raises(ValueError, match="retrain"):
        entry("stu_x", 0.1, 0.2, retrain="maybe")
    bad = [dataclasses.replace(cohort()[0], picture=numpy.zeros((3, 27, 27)))]
    with pytest.raises(ValueError, match="shape"):
        write_boards(bad, Path("/nonexistent/never-written"), spec=SPEC, originals=ORIGINALS, final=False, salt=SALT)


def test_a_bad_record_is_skipped_and_reported_and_never_stops_the_board(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A track with a trailing newline once passed validation and then broke `mlphys leaderboard` for everyone."""
    import os
    import sys

    from nbgrader.api import Gradebook

    # nbgrader creates a new gradebook with alembic, which it calls by name.
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    from mlphys.grading import records
    from mlphys.leaderboard import gather

    good = {"stage": "scored", "track": "MEDIUM/NORMAL", "public_cost": 0.01, "private_cost": 0.02, "detail": "9"}
    bad_entries = [
        {**good, "track": "MEDIUM/NORMAL\n"},
        {**good, "public_cost": "0.001"},
        {**good, "private_cost": None},
        {**good, "detail": ["<b>"]},
        "not an entry",
    ]
    reported: list[str] = []
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        records.replace_records(gb, "03", "nb", "honest", {CHALLENGE.key: {"entries": [good]}})
        records.replace_records(gb, "03", "nb", "mallory", {CHALLENGE.key: {"entries": bad_entries}})
        records.replace_records(gb, "03", "nb", "broken", {CHALLENGE.key: {"entries": "none"}})
        found = gather.found_entries(gb, "03", CHALLENGE, reported.append)
    assert [(f.student, f.entry["track"]) for f in found] == [("honest", "MEDIUM/NORMAL")]
    assert len(reported) == len(bad_entries) + 1 and all("mallory" in r or "broken" in r for r in reported)
    assert found[0].recorded_at is not None  # the grader's own clock decides ties, not the student's


# --- pseudonyms ------------------------------------------------------------------------------------------------


def test_pseudonyms_are_readable_deterministic_and_depend_on_the_salt() -> None:
    name = pseudonym("stu_alpha01", SALT)
    adjective, noun, number = name.split(" ")
    assert adjective.isalpha() and noun.isalpha() and 1 <= int(number) <= 9999
    assert pseudonym("stu_alpha01", SALT) == name
    assert pseudonym("stu_alpha01", "another course") != name
    assert "alpha" not in name.lower()
    with pytest.raises(ValueError, match="salt"):
        pseudonym("stu_alpha01", "")


def test_pseudonyms_do_not_collide_across_a_large_cohort() -> None:
    students = [f"stu{i:05d}" for i in range(2000)]
    assert len({pseudonym(s, SALT) for s in students}) == len(students)
    shown = shown_names(dict.fromkeys(students), SALT)
    assert len(set(shown.values())) == len(students)


def test_a_clash_with_another_shown_name_is_resolved_deterministically() -> None:
    taken = pseudonym("stu_bravo02", SALT)
    # Someone opted in under exactly the pseudonym another student would get: that student's is redrawn.
    shown = shown_names({"stu_bravo02": None, "stu_other": taken}, SALT)
    assert shown["stu_other"] == taken
    assert shown["stu_bravo02"] == pseudonym("stu_bravo02", SALT, attempt=1) != taken
    assert shown_names({"stu_other": taken, "stu_bravo02": None}, SALT) == shown


# --- exports ---------------------------------------------------------------------------------------------------


def test_public_exports_contain_no_private_cost(public_board: dict[str, Path], final_board: dict[str, Path]) -> None:
    public, final = texts(public_board), texts(final_board)
    for cost in PRIVATE:
        for spelling in number_spellings(cost):
            for kind, text in public.items():
                assert spelling not in text, f"private cost {cost} written as {spelling!r} in the public {kind}"
        # The same search finds them once the board is final, so it is not looking for the wrong thing.
        assert all(repr(cost) in final[kind] for kind in ("csv", "json")), cost
        assert f"{cost:.6g}" in final["html"], cost
    assert "private" not in next(csv.reader(io.StringIO(public["csv"])))
    assert "private_cost" in next(csv.reader(io.StringIO(final["csv"])))
    public_rows = [row for rows in json.loads(public["json"])["boards"].values() for row in rows]
    assert public_rows and not any("private_cost" in row for row in public_rows)


def test_student_ids_never_appear_and_opted_in_names_do(public_board: dict[str, Path], final_board: dict[str, Path]):
    for paths in (public_board, final_board):
        exports = texts(paths)
        for student in (e.student for e in cohort()):
            for kind, text in exports.items():
                assert student not in text, f"student id {student} in the {kind}"
        for text in exports.values():
            assert "Ada Lovelace" in text
            assert pseudonym("stu_bravo02", SALT) in text


def test_chosen_names_are_escaped_in_the_page_and_defused_in_the_csv(public_board: dict[str, Path]) -> None:
    page = public_board["html"].read_text(encoding="utf-8")
    assert XSS_SCRIPT not in page and XSS_IMG not in page
    assert "&lt;script&gt;window.__pwned = 1; alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the page's own (tab switching), nothing else
    with open(public_board["csv"], newline="", encoding="utf-8") as handle:
        shown = [row["name"] for row in csv.DictReader(handle)]
    assert "'=HYPERLINK(1)" in shown and "=HYPERLINK(1)" not in shown


def test_csv_and_json_list_every_entry_once_in_board_order(final_board: dict[str, Path]) -> None:
    with open(final_board["csv"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(cohort())
    assert [r["track"] for r in rows] == sorted((r["track"] for r in rows), key=TRACKS.index)
    first = rows[0]
    assert (first["rank"], first["name"], first["detail"], first["private_cost"]) == (
        "1",
        XSS_SCRIPT,
        "9",
        "0.5087361",
    )
    assert first["submitted_at"] == "2025-06-01T12:05:00"
    foxtrot = next(r for r in rows if r["retrain"] == "reproduced")
    assert (foxtrot["retrained_cost"], foxtrot["submitted_at"]) == ("0.0412", "")

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    document = json.loads(final_board["json"].read_text(encoding="utf-8"), parse_constant=refuse)
    assert (document["title"], document["final"], document["tie_break"]) == (TITLE, True, TIE_BREAK)
    assert document["tracks"] == list(TRACKS) and set(document["boards"]) == set(TRACKS)
    invalid = document["boards"]["MEDIUM/NORMAL"][-1]
    assert (invalid["rank"], invalid["status"], invalid["public_cost"]) == (None, "invalid cost", None)


def test_rebuilding_gives_byte_identical_files(public_board: dict[str, Path], tmp_path: Path) -> None:
    shuffled = cohort()
    random.Random(7).shuffle(shuffled)
    again = build(tmp_path / "again", final=False, entries=shuffled)
    for kind, path in public_board.items():
        assert again[kind].read_bytes() == path.read_bytes(), kind
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == [
        "index.html",
        "leaderboard.csv",
        "leaderboard.json",
    ]


def test_an_empty_challenge_still_gives_a_page(tmp_path: Path) -> None:
    paths = write_boards([], tmp_path / "empty", spec=SPEC, originals=ORIGINALS[:0], final=False, salt=SALT)
    assert paths["html"].read_text(encoding="utf-8").count("No entries yet.") == len(TRACKS)
    assert json.loads(paths["json"].read_text())["boards"] == {track: [] for track in TRACKS}


# --- the page in a real browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through selenium; skipped where either is not installed."""
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them as root)")
    with headless_chromium("1280,1600") as driver:
        yield driver


@pytest.fixture(scope="module")
def visited(browser, public_board: dict[str, Path]):
    browser.get(public_board["html"].resolve().as_uri())
    return browser


def test_browser_shows_every_board_with_its_rows_in_rank_order(visited) -> None:
    by = pytest.importorskip("selenium.webdriver.common.by").By
    expected = rank(cohort(), final=False, salt=SALT)
    for track in TRACKS:
        table = visited.find_element(by.CSS_SELECTOR, f'table.board[data-track="{track}"]')
        cells = table.find_elements(by.CSS_SELECTOR, "tbody tr td.name")
        assert [c.get_attribute("textContent") for c in cells] == names(expected, track), track
        ranks = [c.get_attribute("textContent") for c in table.find_elements(by.CSS_SELECTOR, "tbody tr td.rank")]
        assert ranks == [
            str(r.rank) if r.rank else ("flagged" if r.status == "flagged" else "—") for r in expected[track]
        ]
    title = visited.find_element(by.ID, "title").text
    assert title == TITLE


def test_browser_loads_every_image(visited) -> None:
    images = visited.execute_script(
        "return Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0, i.src.slice(0, 22)]);"
    )
    # The cost distribution and one reconstruction grid per board with reconstructions (HARD/LONG has none).
    assert len(images) == 4
    assert all(loaded and src == "data:image/png;base64," for loaded, src in images)
    assert visited.execute_script("return performance.getEntriesByType('resource').length") == 0  # nothing fetched


def test_browser_runs_no_injected_script(visited) -> None:
    exceptions = pytest.importorskip("selenium.common.exceptions")
    assert visited.execute_script("return typeof window.__pwned") == "undefined"
    with pytest.raises(exceptions.NoAlertPresentException):
        visited.switch_to.alert.text  # noqa: B018 -- reading it is what raises
    by = pytest.importorskip("selenium.webdriver.common.by").By
    shown = [c.get_attribute("textContent") for c in visited.find_elements(by.CSS_SELECTOR, "td.name")]
    assert XSS_SCRIPT in shown and XSS_IMG in shown  # shown literally, as text


def test_browser_tabs_switch_boards_and_the_page_reads_without_script(visited) -> None:
    by = pytest.importorskip("selenium.webdriver.common.by").By

    def visible() -> list[str]:
        sections = visited.find_elements(by.CSS_SELECTOR, "section.board-section")
        return [s.get_attribute("data-track") for s in sections if s.is_displayed()]

    assert visible() == ["MEDIUM/NORMAL"]
    visited.find_element(by.CSS_SELECTOR, 'nav.tabs a[data-track="HARD/NORMAL"]').click()
    assert visible() == ["HARD/NORMAL"]
    assert visited.find_element(by.CSS_SELECTOR, 'table.board[data-track="HARD/NORMAL"]').is_displayed()
    visited.execute_script("document.documentElement.classList.remove('js')")  # as if script were off
    assert visible() == list(TRACKS)
    visited.execute_script("document.documentElement.classList.add('js')")


def test_browser_screenshot_shows_a_rendered_page(visited) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(visited.get_screenshot_as_png()), format="png")
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    rgb = (pixels[..., :3] * 255).round().astype(numpy.int64)
    colours = numpy.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
    assert len(colours) > 50  # text, tables and plots, not a blank or single-colour page


def test_the_gradebook_is_found_where_nbgrader_finds_it_and_a_missing_one_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`db_url` in the user's Jupyter config once went unread: the boards came from a new, empty gradebook."""
    from mlphys.leaderboard import gather

    course, user_config = tmp_path / "course", tmp_path / "jupyter-config"
    course.mkdir()
    user_config.mkdir()
    gradebook = tmp_path / "elsewhere" / "gradebook.db"
    (course / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'ml4physics'\n")
    (user_config / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.db_url = 'sqlite:///{gradebook}'\n")
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(user_config))
    with pytest.raises(SystemExit, match="no gradebook"):
        gather.Course.load(course)
    assert not gradebook.exists()  # nothing was created
    gradebook.parent.mkdir()
    gradebook.touch()
    assert gather.Course.load(course).db_url == f"sqlite:///{gradebook}"
