"""A pool of warm sandboxed kernels (mlphys.grading.warm_kernels): launched ahead for a live challenge, and still
one fresh kernel per session, destroyed after it."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlphys.grading import isolated
from mlphys.grading.execute import sandbox_problem
from mlphys.grading.warm_kernels import WarmKernels
from mlphys.kernel import wire

REPO = Path(__file__).resolve().parent.parent
# numpy alone: a kernel imports it at start only when asked to (a cold kernel does not), and it is quick.
PRELOAD = ("numpy",)


def _isolation(timeout: float = 20) -> isolated.Isolation:
    return isolated.Isolation(use_bwrap=sandbox_problem() is None, timeout=timeout)


@pytest.fixture
def pool() -> Iterator[WarmKernels]:
    with WarmKernels(_isolation(), size=2, preload=PRELOAD) as kernels:
        yield kernels


def _value(session: isolated.FreshSession, name: str) -> object:
    described = session.call({"op": "describe", "names": [name]})["names"][name]
    return described.get("value", described["kind"])


def _deadline(seconds: float = 60) -> float:
    return time.monotonic() + seconds


def _processes_mentioning(text: str) -> list[int]:
    """Processes whose command line holds ``text`` (a sandbox's staging directory: every process of a kernel)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


LOOKS = (
    "import os, sys\n"
    "preloaded = sorted(m for m in ('numpy', 'torch') if m in sys.modules)\n"
    "told = 'MLPHYS_PRELOAD' in os.environ\n"
    "seen = [p for p in ('note.txt', '/tmp/note.txt') if os.path.exists(p)]\n"
)


def test_every_session_is_a_fresh_kernel_with_the_modules_preloaded(pool: WarmKernels) -> None:
    leave = "secret = 42\nfor p in ('note.txt', '/tmp/note.txt'):\n    open(p, 'w').write('left behind')\n"
    for _ in range(3):  # more sessions than the pool holds: replacements serve too
        with pool.session([LOOKS, leave], _deadline()) as session:
            assert _value(session, "preloaded") == ["numpy"]
            assert _value(session, "told") is False  # the kernel's environment is a cold kernel's
            assert _value(session, "seen") == []  # nothing of the session before
            assert _value(session, "secret") == 42
        with pool.session([LOOKS], _deadline()) as session:
            assert _value(session, "secret") == "missing"
            assert _value(session, "seen") == []
    with isolated.fresh_session(_isolation(), [LOOKS], _deadline()) as cold:
        assert _value(cold, "preloaded") == []  # what the pool's kernels have is the preloading's doing


def test_a_failing_session_raises_as_a_cold_one_and_the_pool_serves_on(pool: WarmKernels) -> None:
    with pytest.raises(isolated.CellFailed) as failed:
        with pool.session(["x = 1", "raise ValueError('no')"], _deadline()):
            pass
    assert (failed.value.index, failed.value.ename) == (1, "ValueError")
    with pytest.raises(isolated.KernelTimeout):
        with pool.session(["import time; time.sleep(60)"], _deadline(), isolation=_isolation(timeout=2)):
            pass
    with pytest.raises(isolated.KernelProblem, match="stopped"):
        with pool.session(["import os\n\ndef die():\n    os._exit(1)\n"], _deadline()) as session:
            session.call({"op": "call", "name": "die", "args": wire.encode([]), "kwargs": wire.encode({})})
    with pool.session(["y = 2"], _deadline()) as session:
        assert _value(session, "y") == 2


def test_a_kernel_that_died_while_it_waited_is_replaced_not_handed_out(pool: WarmKernels) -> None:
    dead = pool.waiting[0]
    process = dead.km.provisioner.process  # type: ignore[attr-defined]
    process.kill()
    process.wait(timeout=10)
    with pool.session(["z = 3"], _deadline()) as session:
        assert session.box is not dead.box and _value(session, "z") == 3
    assert not dead.box.rundir.exists()  # its sandbox went when it was found dead
    pool.refill()
    assert dead not in pool.waiting and len(pool.waiting) == pool.size


def test_closing_the_pool_leaves_no_kernel_sandbox_or_cgroup_behind() -> None:
    pool = WarmKernels(_isolation(), size=2, preload=PRELOAD)
    boxes = []
    with pool.session(["w = 4"], _deadline()) as session:
        boxes.append(session.box)
        assert _processes_mentioning(str(session.box.rundir.parent))
    pool.refill()
    boxes += [launched.box for launched in pool.waiting]
    assert len(boxes) == 3 and all(_processes_mentioning(str(box.rundir.parent)) for box in boxes[1:])
    pool.close()
    for box in boxes:
        assert _processes_mentioning(str(box.rundir.parent)) == []
        assert not box.rundir.parent.exists()
        assert box.cgroup is None or not any(path.exists() for path in box.cgroup.paths)
    assert pool.waiting == ()
    with pytest.raises(RuntimeError):
        with pool.session([], _deadline()):
            pass


def test_a_pool_serves_where_an_event_loop_is_running() -> None:
    """A live service may be asynchronous: the pool's launches and the sessions then share run_sync's runner."""

    async def serve() -> object:
        with WarmKernels(_isolation(), size=1, preload=()) as pool:
            for value in (5, 6):
                with pool.session([f"v = {value}"], _deadline()) as session:
                    answer = _value(session, "v")
            return answer

    assert asyncio.run(serve()) == 6


def test_an_entry_scored_through_the_pool_scores_as_it_does_cold(tmp_path: Path) -> None:
    from mlphys.assignments.autoencoder_challenge import cases, challenge
    from mlphys.course import autoencoder
    from mlphys.demo.case import Materials
    from mlphys.grading.challenge import score_challenge
    from mlphys.grading.submission import MISSING, Submission

    materials = Materials(REPO, "03_autoencoder_challenge", "autoencoder_challenge")
    cells = {c: cases.reference_cell(materials, c) for c in (challenge.ARCHITECTURE_CELL, challenge.TRAINING_CELL)}
    track = "MEDIUM/NORMAL"
    budget = autoencoder.parse_track(track)[1]
    weights = cases.trained_weights(cells["architecture"], cells["training"], track, budget, "the reference cells")
    shutil.copyfile(weights, tmp_path / autoencoder.weights_filename(track))
    values = {"TRACKS": [track], "SHOW_MY_NAME": False}

    def submission() -> Submission:
        entry = Submission(files=tmp_path, cells=cells, isolation=_isolation(60), secret="a secret")
        entry.lookup = lambda name: values.get(name, MISSING)
        return entry

    cold = score_challenge(submission(), challenge.CHALLENGE).primary
    with WarmKernels(_isolation(60), size=2) as pool:
        entry = submission()
        entry.kernels = pool
        warm = score_challenge(entry, challenge.CHALLENGE).primary
    assert cold.stage == "scored", cold.problem
    assert warm.stage == "scored", warm.problem
    assert (warm.stage, warm.problem, warm.public_cost, warm.private_cost, warm.detail) == (
        cold.stage, cold.problem, cold.public_cost, cold.private_cost, cold.detail,
    )  # fmt: skip
    assert warm.picture is not None and cold.picture is not None and (warm.picture == cold.picture).all()


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_a_session_leaves_the_caller_s_stop_handlers_in_place(pool: WarmKernels, warm: bool) -> None:
    # nbclient takes SIGINT and SIGTERM while it sets a kernel up: a service that finishes its entry on SIGTERM
    # must still have its own handler afterwards, not the default that kills it.

    def finish_first(signum: int, frame: object) -> None:
        pass

    before = signal.signal(signal.SIGTERM, finish_first)
    try:
        cells, deadline = ["x = 1"], _deadline()
        starting = pool.session(cells, deadline) if warm else isolated.fresh_session(_isolation(), cells, deadline)
        with starting as session:
            assert signal.getsignal(signal.SIGTERM) is finish_first, "taken while the session runs"
            assert _value(session, "x") == 1
        assert signal.getsignal(signal.SIGTERM) is finish_first, "not given back after the session"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)
