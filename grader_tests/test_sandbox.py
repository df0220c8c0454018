"""The sandbox the student's kernel runs in: what it cannot see, reach or exhaust."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlphys.grading import isolated, sandbox
from mlphys.kernel import wire

pytestmark = pytest.mark.skipif(sandbox.bwrap_available() is not None, reason="no bubblewrap here")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def box(tmp_path: Path) -> Iterator[sandbox.Sandbox]:
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "data.txt").write_text("the student's file")
    (tmp_path / "run").mkdir()
    limits = sandbox.Limits(memory_bytes=512 * 2**20, max_processes=32, disk_bytes=64 * 2**20)
    jail = sandbox.Sandbox(tmp_path / "submission", tmp_path / "run", limits, cgroup=sandbox.CGroup.create(limits))
    yield jail
    if jail.cgroup is not None:
        jail.cgroup.destroy()


def python(box: sandbox.Sandbox, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return box.run([sys.executable, "-c", code], timeout=timeout)


def test_course_files_and_grader_environment_are_invisible(
    box: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADER_SECRET", "s3cret")
    probe = "import os; print(os.path.exists({!r}), os.path.exists({!r}), 'GRADER_SECRET' in os.environ)"
    result = python(box, probe.format(str(REPO / "source"), str(REPO / "nbgrader_config.py")))
    assert result.stdout.split() == ["False", "False", "False"], result.stderr


def test_no_network(box: sandbox.Sandbox) -> None:
    code = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), timeout=2); print('open')\n"
        "except OSError as e: print('blocked')"
    )
    assert python(box, code).stdout.strip() == "blocked"


def test_software_environment_is_read_only(box: sandbox.Sandbox) -> None:
    target = Path(sandbox.__file__)
    code = f"try:\n    open({str(target)!r}, 'a')\n    print('writable')\nexcept OSError:\n    print('read-only')"
    assert python(box, code).stdout.strip() == "read-only"


def test_memory_is_bounded(box: sandbox.Sandbox) -> None:
    if box.cgroup is None:
        pytest.skip("no cgroups here: memory is bounded per process only")
    result = python(box, "x = bytearray(2 * 2**30); x[::4096] = b'1' * len(x[::4096]); print('allocated')")
    assert "allocated" not in result.stdout
    assert result.returncode != 0
    assert box.cgroup.oom_killed()  # so the student is told it was memory


def test_fork_bomb_is_contained(box: sandbox.Sandbox) -> None:
    if box.cgroup is None:
        pytest.skip("no cgroups here")
    code = (
        "import os\nn = 0\n"
        "for _ in range(1000):\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        import time; time.sleep(30); os._exit(0)\n    n += 1\n"
        "print(n)"
    )
    result = python(box, code)
    assert int(result.stdout.strip()) < 32


def test_nothing_outlives_the_sandbox(box: sandbox.Sandbox) -> None:
    marker = f"{uuid.uuid4().hex}"
    code = (
        "import subprocess\n"
        f"subprocess.Popen(['sleep', '300'], start_new_session=True, env={{'M': '{marker}'}})\nprint('ok')"
    )
    assert python(box, code).stdout.strip() == "ok"
    survivors = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _has_env(p, marker)]
    assert survivors == []


def _has_env(proc: Path, marker: str) -> bool:
    try:
        return marker.encode() in (proc / "environ").read_bytes()
    except OSError:
        return False


def test_submission_files_are_there_and_writes_never_reach_the_host(box: sandbox.Sandbox, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    # The sandbox has a private /tmp, so the write may "succeed" in there; it must not reach the host.
    code = (
        "print(open('data.txt').read())\nopen('inside.txt', 'w').write('x')\n"
        f"try:\n    open({str(outside)!r}, 'w').write('x')\nexcept OSError:\n    pass"
    )
    result = python(box, code)
    assert result.stdout.strip() == "the student's file", result.stderr
    assert not outside.exists()
    assert not (box.submission / "inside.txt").exists()


def test_disk_is_bounded(box: sandbox.Sandbox) -> None:
    code = (
        "written = 0\ntry:\n    with open('big', 'wb') as f:\n        for _ in range(200):\n"
        "            f.write(b'x' * 2**20); f.flush(); written += 1\nexcept OSError:\n    pass\nprint(written)"
    )
    assert int(python(box, code).stdout.strip()) < 70


def test_grader_environment_is_not_visible_even_to_pid_1(box: sandbox.Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_SECRET", "s3cret")
    code = (
        "import os\n"
        "def shows(pid):\n"
        "    try:\n"
        "        return b's3cret' in open(f'/proc/{pid}/environ', 'rb').read()\n"
        "    except OSError:  # not even readable (the sandbox's PID 1 is not the student's process)\n"
        "        return False\n"
        "print(any(shows(p) for p in os.listdir('/proc') if p.isdigit()))"
    )
    assert python(box, code).stdout.strip() == "False"


def test_unsandboxed_fallback_is_refused_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlphys.grading import execute

    monkeypatch.setitem(execute._sandbox_problem, "bwrap", "bubblewrap (bwrap) is not installed")
    step = execute.SandboxedExecute()
    with pytest.raises(sandbox.SandboxUnavailable, match="Refusing to run student code"):
        step.preprocess(None, {})  # type: ignore[arg-type]


def test_only_the_course_library_and_kernel_code_are_visible(box: sandbox.Sandbox, tmp_path: Path) -> None:
    """The three trust zones: a student's kernel imports the course library and the in-kernel code, and
    can neither import nor read the grader (engine, assignments' hidden halves, demo cases, CLI)."""
    import mlphys

    package = Path(mlphys.__file__).resolve().parent
    grader_parts = ["mlphys.grading", "mlphys.demo", "mlphys.leaderboard", "mlphys.assignments", "mlphys.cli"]
    code = (
        "import importlib, os, json\n"
        "def imports(name):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "        return True\n"
        "    except ImportError:\n"
        "        return False\n"
        f"names = {[*grader_parts, 'mlphys.course.circles', 'mlphys.kernel.bridge']!r}\n"
        f"paths = {[str(package / p) for p in ('grading', 'demo', 'cli.py')] + [str(REPO / 'source')]!r}\n"
        "print(json.dumps({'imports': {n: imports(n) for n in names},\n"
        "                  'visible': {p: os.path.exists(p) for p in paths}}))\n"
    )
    result = python(box, code)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = __import__("json").loads(result.stdout)
    assert seen["imports"]["mlphys.course.circles"] and seen["imports"]["mlphys.kernel.bridge"]
    assert [name for name in grader_parts if seen["imports"][name]] == []
    assert [path for path, exists in seen["visible"].items() if exists] == []
    assert (package / "grading").is_dir() and (REPO / "source").is_dir()  # they exist outside the sandbox


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="keyctl's syscall number is the x86_64 one here")
def test_student_code_is_not_root_on_the_host_and_has_a_fresh_session_keyring(box: sandbox.Sandbox) -> None:
    """Kernel keyrings created in a sandbox once showed up in the host's /proc/keys as uid 0, outliving it."""
    import ctypes

    session = "ctypes.CDLL(None, use_errno=True).syscall(250, 0, ctypes.c_int(-3), 0)"  # KEYCTL_GET_KEYRING_ID
    code = (
        "import ctypes, os\n"
        "inside, outside, count = map(int, open('/proc/self/uid_map').read().split()[:3])\n"
        "print(os.getuid() - inside + outside)\n"
        f"print({session})\n"
    )
    result = python(box, code)
    assert result.returncode == 0, result.stderr[-2000:]
    host_uid, keyring = map(int, result.stdout.split())
    assert host_uid != 0
    assert host_uid == (sandbox.HOST_USER if os.geteuid() == 0 else os.geteuid())
    ours = eval(session, {"ctypes": ctypes})
    assert keyring > 0 and keyring != ours


def test_gpu_devices_reach_the_sandbox_only_when_the_instructor_enables_it(
    box: sandbox.Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = tmp_path / "nvidia0"  # stands in for /dev/nvidia0, which this machine may not have
    device.write_text("")
    monkeypatch.setattr(sandbox, "gpu_devices", lambda: [str(device)])
    probe = f"import os; print(os.path.exists({str(device)!r}))"
    assert python(box, probe).stdout.strip() == "False"
    box.gpu = True
    assert python(box, probe).stdout.strip() == "True"


def test_grading_a_challenge_without_a_secret_is_refused_outright(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no secret, the grader once used a public default, from which anyone could compute the hidden data."""
    from mlphys.grading import execute
    from mlphys.grading.handoff import NotebookView

    view = NotebookView("03_autoencoder_challenge", "autoencoder_challenge", {})
    monkeypatch.setattr(NotebookView, "load", classmethod(lambda cls, resources: view))
    resources = {"nbgrader": {"assignment": view.assignment, "student": "someone"}}
    with pytest.raises(RuntimeError, match="MLPHYS_CHALLENGE_SECRET"):
        execute.SandboxedExecute(challenge_secret="").preprocess(None, resources)  # type: ignore[arg-type]


def test_matplotlib_finds_its_font_list_ready_and_read_only(box: sandbox.Sandbox) -> None:
    # Each kernel starts with an empty configuration directory; without the host's font list shown to it,
    # matplotlib would scan the system's fonts again for every student.
    code = (
        "import logging, os\nlogging.basicConfig(level=logging.DEBUG)\nimport matplotlib.font_manager as fm\n"
        "path = os.path.join(os.environ['MPLCONFIGDIR'], f'fontlist-v{fm.FontManager.__version__}.json')\n"
        "try:\n    open(path, 'a')\n    print('writable')\nexcept OSError:\n    print('read-only')\n"
        "import matplotlib.pyplot as plt\nplt.figure(); plt.plot([0, 1]); plt.savefig('plot.png'); print('plotted')"
    )
    result = python(box, code)
    assert result.stdout.split() == ["read-only", "plotted"], result.stderr
    assert "Using fontManager instance from /tmp/matplotlib/fontlist" in result.stderr
    assert "generated new fontManager" not in result.stderr


@pytest.mark.parametrize("attempt", range(3))
def test_a_fresh_kernel_is_ready_only_once_its_output_reaches_the_grader(attempt: int) -> None:
    # The readiness handshake stops at the kernel's first "idle" on IOPub (mlphys.grading.kernel.ReadyClient):
    # a reply carried on IOPub right after it, with no cell run in between, must not be lost.
    reply = isolated.run_fresh(isolated.Isolation(), [], {"op": "describe", "names": ["undefined_name"]})
    assert reply == {"ok": True, "names": {"undefined_name": {"kind": "missing"}}}


def test_files_beside_the_notebook_do_not_replace_the_kernel(tmp_path: Path) -> None:
    # The student's working directory is on the kernel's sys.path for their own imports, but not while the
    # kernel starts: an ipykernel_launcher.py there (or anything ipykernel imports) changes nothing.
    def stage(dest: Path) -> None:
        (dest / "ipykernel_launcher.py").write_text("import sys\nsys.exit(3)\n")
        (dest / "ipykernel").mkdir()
        (dest / "ipykernel" / "__init__.py").write_text("raise SystemExit(4)\n")
        (dest / "helper.py").write_text("ANSWER = 42\n")

    iso = isolated.Isolation()
    with isolated.staged_sandbox(iso, stage) as box:
        session = isolated.FreshSession(iso, box, time.monotonic() + 120)
        try:
            session.start(["from helper import ANSWER"])
            reply = session.call({"op": "describe", "names": ["ANSWER"]})
        finally:
            session.close()
    assert reply["names"]["ANSWER"]["kind"] == "value"


def test_a_fresh_kernel_gets_no_time_past_its_deadline() -> None:
    # A kernel that answers each call quickly must not stretch its deadline by one call after another: past the
    # deadline no call starts, and none runs beyond it.
    cells = ["import time\n\ndef slow():\n    time.sleep(0.4)\n    return 1\n"]
    slow = {"op": "call", "name": "slow", "args": wire.encode([]), "kwargs": wire.encode({})}
    with isolated.fresh_session(isolated.Isolation(timeout=20), cells, time.monotonic() + 120) as session:
        session.deadline = time.monotonic() + 1.5
        started, answered = time.monotonic(), 0
        with pytest.raises(isolated.KernelTimeout):
            for _ in range(20):
                assert session.call(slow)["ok"]
                answered += 1
        assert time.monotonic() - started < 2.5 and answered <= 4
