"""The live challenge service under a small burst (benchmarks/bench_live_load.py with 24 entries from 12 students):
handed in through nbgrader's own submit to a running ``mlphys challenge serve --workers 2``, which is stopped with
SIGTERM and started again in the middle of it.  The invariants, not the timings: every entry has one row and is
scored once or refused over the day's limit, nothing lost, the board agrees with the store, the log is clean."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlphys.grading.execute import sandbox_problem

REPO = Path(__file__).resolve().parent.parent


def load_bench() -> object:
    spec = importlib.util.spec_from_file_location("bench_live_load", REPO / "benchmarks" / "bench_live_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = load_bench()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if sandbox_problem():
        pytest.skip(f"no sandbox for the entries: {sandbox_problem()}")
    plan = bench.LoadPlan(entries=24, students=12, per_day=3, workers=2, warm_kernels=1, restart=True, timeout=240)
    done = bench.run_load(plan, tmp_path_factory.mktemp("live-load") / "course")
    print("\n" + done.figures())
    yield done


def problems(report: object, *words: str) -> list[str]:
    return [p for p in report.problems if any(w in p for w in words)]


def test_every_entry_handed_in_has_one_row_and_none_is_lost(report: object) -> None:
    assert len(report.handed_in) == 24
    assert not problems(report, "lost", "more than one row", "nobody handed in", "inbound folders", "entries done")
    assert report.scored + report.refused == 24


def test_each_entry_is_scored_once_with_the_verdict_its_files_deserve(report: object) -> None:
    assert not problems(report, "scored' lines", "dropped", "without a result", "figure:")
    assert report.scored == 22


def test_the_day_s_limit_refuses_exactly_the_entries_over_it(report: object) -> None:
    assert report.refused == 2  # the keen student's fourth and fifth
    assert not problems(report, "not scored", "not refused", "over the day's limit", "without naming the limit")


def test_the_published_board_agrees_with_the_store(report: object) -> None:
    assert not problems(report, "MEDIUM/NORMAL", "board", "history")


def test_the_service_logs_no_traceback(report: object) -> None:
    assert not problems(report, "traceback")


def test_the_service_stops_on_sigterm_and_its_scorers_with_it(report: object) -> None:
    assert not problems(report, "exit statuses", "left processes")
    assert report.problems == []  # and nothing else went wrong
