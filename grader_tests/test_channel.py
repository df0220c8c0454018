"""The direct call channel between the grader and a sandboxed kernel (``mlphys.grading.channel``).

Each test grades a small notebook in a real sandboxed kernel through a :class:`GradingRun`.  The
channel opens at the first hidden test's first call; a cell after it may then do to the kernel's end
of the channel whatever student code can do (it runs in the same process): close it, answer in its
place, forge, flood, stall.  Whatever it does, only that notebook's later test cells lose points, and
every such run ends with a verdict for each test cell and a reason the student can read.
"""

from __future__ import annotations

import typing as t

import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_notebook

from mlphys.grading import channel, handoff, hidden, isolated, run, sandbox
from mlphys.grading.handoff import NotebookView
from mlphys.grading.submission import Submission

pytestmark = pytest.mark.skipif(sandbox.bwrap_available() is not None, reason="no bubblewrap here")

CALL_TIMEOUT = 3  # seconds per cell or call, so that a stalled reply is noticed soon

SQUARE = "def square(x):\n    return x * x\n"
TAKE_OVER = (
    # What any student code can do: find the kernel's end of the channel and answer in its place.
    "import gc, json, struct, threading\n"
    "_ch = next(o for o in gc.get_objects() if type(o).__name__ == '_Channel')\n"
    "_ch.loop.remove_reader(_ch.sock.fileno())\n"
    "def _request():\n"
    "    seq, n = struct.unpack('>QQ', _ch.sock.recv(16, 0x100))\n"
    "    body = b''\n"
    "    while len(body) < n:\n"
    "        body += _ch.sock.recv(n - len(body))\n"
    "    return seq\n"
)


def answering(reply: str, prepare: str = "") -> str:
    """Student code that answers every later request itself: ``prepare``, then sends ``reply`` (Python)."""
    body = "".join(f"    {line}\n" for line in prepare.splitlines())
    return (
        TAKE_OVER + f"def _answer():\n    seq = _request()\n{body}    _ch.sock.sendall({reply})\n"
        "_ch.loop.add_reader(_ch.sock.fileno(), _answer)\n"
    )


class Graded(t.NamedTuple):
    verdicts: dict[str, hidden.Verdict]
    grading: run.GradingRun
    notebook: NotebookNode


def grade(cells: list[str | tuple[str, str]], direct_calls: bool = True) -> Graded:
    """Grade a notebook of code cells; ``(grade_id, hidden source)`` is a test cell with only a hidden part."""
    isolation = isolated.Isolation(timeout=CALL_TIMEOUT)
    nb_cells, tests = [], {}
    for cell in cells:
        if isinstance(cell, tuple):
            grade_id, hidden_source = cell
            test = new_code_cell("")
            test.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": grade_id, "points": 1}
            tests[grade_id] = handoff.TestCell("", hidden_source, 1.0)
            nb_cells.append(test)
        else:
            nb_cells.append(new_code_cell(cell))
    nb = new_notebook(cells=nb_cells)
    with isolated.staged_sandbox(isolation) as box:
        submission = Submission(files=box.submission, cells={}, isolation=isolation, secret="", student="s")
        grading = run.GradingRun(
            box,
            isolation,
            NotebookView("a", "nb", tests),
            submission,
            {},
            notebook_timeout=60,
            memory_limit_mb=1024,
            direct_calls=direct_calls,
        )
        grading.grade(nb)
    return Graded(grading.verdicts, grading, nb)


def passed(graded: Graded) -> dict[str, bool]:
    return {grade_id: verdict.passed for grade_id, verdict in graded.verdicts.items()}


# --------------------------------------------------------------------------------------------------
# The same grading as over Jupyter


BEHAVIOURS: list[str | tuple[str, str]] = [
    SQUARE
    + "def fails(x):\n    raise ValueError('no negative numbers, please')\n"
    + "def leaves():\n    raise SystemExit(3)\n"
    + "def chatty(n):\n    for i in range(n):\n        print('line', i, flush=True)\n    return n\n"
    + "def odd():\n    return object()\n"
    + "def nan():\n    return float('nan')\n"
    + "level = 7\n",
    ("values", "expect_close(square(np.arange(4.0)), [0, 1, 4, 9], what='square')\nassert level == 7"),
    ("student_exception", "fails(-1)"),
    ("system_exit", "leaves()"),
    ("missing", "undefined_function(1)"),
    ("not_plain_data", "expect_number(odd(), what='odd()')"),
    ("nan", "expect_number(nan(), what='nan()')"),
    ("prints_between_calls", "for _ in range(200):\n    assert chatty(50) == 50"),
    ("still_answers", "assert square(3) == 9"),
]


@pytest.fixture(scope="module")
def over_both() -> tuple[Graded, Graded]:
    return grade(BEHAVIOURS, direct_calls=True), grade(BEHAVIOURS, direct_calls=False)


def test_calls_go_over_the_channel(over_both: tuple[Graded, Graded]) -> None:
    direct, jupyter = over_both
    assert direct.grading.calls.channel is not None and direct.grading.calls.channel.sequence > 200
    assert jupyter.grading.calls.channel is None


def test_verdicts_and_messages_are_those_of_jupyter_calls(over_both: tuple[Graded, Graded]) -> None:
    direct, jupyter = over_both
    messages = {k: v.message for k, v in direct.verdicts.items()}
    assert passed(direct) == {
        "values": True,
        "student_exception": False,
        "system_exit": False,
        "missing": False,
        "not_plain_data": False,
        "nan": False,
        "prints_between_calls": True,
        "still_answers": True,
    }
    assert "raised ValueError: no negative numbers, please" in messages["student_exception"]
    assert "does not define `undefined_function`" in messages["missing"]
    assert "raised SystemExit" in messages["system_exit"]
    assert jupyter.verdicts == direct.verdicts


def test_a_notebook_graded_twice_over_the_channel_gets_the_same_verdicts(over_both: tuple[Graded, Graded]) -> None:
    assert grade(BEHAVIOURS).verdicts == over_both[0].verdicts


# --------------------------------------------------------------------------------------------------
# Student code that turns on the channel


def interfered(verdict: hidden.Verdict) -> bool:
    return not verdict.passed and "interfered with the grader's connection" in verdict.message


def grade_after(attack: str, then: str = "assert square(2) == 4") -> Graded:
    """The channel opens in test cell ``before``; ``attack`` runs; ``during`` and ``after`` are judged."""
    return grade([SQUARE, ("before", "assert square(3) == 9"), attack, ("during", then), ("after", then)])


def test_closing_the_channel_stops_grading_with_a_reason() -> None:
    graded = grade_after("import gc\nnext(o for o in gc.get_objects() if type(o).__name__ == '_Channel').sock.close()")
    assert graded.verdicts["before"].passed
    assert interfered(graded.verdicts["during"]) and interfered(graded.verdicts["after"])


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param("struct.pack('>QQ', seq + 1, 2) + b'{}'", id="another_requests_reply"),
        pytest.param("struct.pack('>QQ', seq, 2**40)", id="a_terabyte_announced"),
        pytest.param("b'\\xff' * (64 * 2**20)", id="a_flood_of_bytes"),
    ],
)
def test_a_reply_that_is_not_the_answer_stops_grading_at_once(reply: str) -> None:
    graded = grade_after(answering(reply))
    assert graded.verdicts["before"].passed
    assert interfered(graded.verdicts["during"]), graded.verdicts["during"].message
    assert interfered(graded.verdicts["after"])


def test_a_stalled_reply_is_a_timeout() -> None:
    graded = grade_after(answering("struct.pack('>QQ', seq, 100) + b'[1'"))
    assert not graded.verdicts["during"].passed
    assert f"did not return within {CALL_TIMEOUT} s" in graded.verdicts["during"].message
    assert not graded.verdicts["after"].passed


def test_garbage_in_a_well_formed_frame_fails_that_test_only() -> None:
    attack = answering("struct.pack('>QQ', seq, 9) + b'not json!'")
    graded = grade([SQUARE, ("before", "assert square(3) == 9"), attack, ("during", "square(2)"), ("after", "pass")])
    assert "cannot accept" in graded.verdicts["during"].message
    assert graded.verdicts["after"].passed  # grading went on


def test_a_forged_reply_is_judged_like_a_returned_value() -> None:
    # Answering in the bridge's place earns what returning the value would: here, a wrong square.
    forged = "{'ok': True, 'names': {'square': {'kind': 'function'}}, 'value': 5}"
    attack = answering("struct.pack('>QQ', seq, len(body)) + body", prepare=f"body = json.dumps({forged}).encode()")
    graded = grade_after(attack, then="expect_close(square(2.0), 4.0, what='square(2)')")
    assert passed(graded) == {"before": True, "during": False, "after": False}
    assert "square(2)" in graded.verdicts["during"].message
    assert not interfered(graded.verdicts["during"])


def test_a_kernel_that_dies_during_a_call_is_reported_as_dead() -> None:
    dies = "def die():\n    import os\n    os._exit(1)\n"
    graded = grade([SQUARE + dies, ("before", "assert square(3) == 9"), ("dies", "die()")])
    assert graded.verdicts["before"].passed
    assert "kernel died" in graded.verdicts["dies"].message


def test_a_kernel_whose_bridge_never_connects_is_graded_over_jupyter() -> None:
    # The student replaced the channel's opening: calls go the old way, and are judged the same.
    sabotage = "import mlphys.kernel.bridge as _b\n_b.open_channel = lambda path, token: None\n"
    graded = grade([SQUARE + sabotage, ("first", "assert square(3) == 9"), ("second", "assert square(4) == 16")])
    assert passed(graded) == {"first": True, "second": True}
    assert graded.grading.calls.channel is None and not graded.grading.calls.direct


def test_strangers_knocking_on_the_channel_do_not_keep_the_kernel_out() -> None:
    # Code in the sandbox connects to the grader's socket first, with wrong tokens and junk.
    knock = (
        "import os, socket, struct, threading, time\n"
        "_path = os.path.join(os.path.dirname(__import__('ipykernel').connect.get_connection_file()), "
        f"'{channel.SOCKET_NAME}')\n"
        "def _knock():\n"
        "    for _ in range(2000):\n"
        "        try:\n"
        "            s = socket.socket(socket.AF_UNIX); s.connect(_path)\n"
        "            s.sendall(struct.pack('>QQ', 0, 32) + b'0' * 32)\n"
        "            return\n"
        "        except OSError:\n"
        "            time.sleep(0.001)\n"
        "threading.Thread(target=_knock, daemon=True).start()\n"
    )
    graded = grade([SQUARE + knock, ("first", "assert square(3) == 9"), ("second", "assert square(4) == 16")])
    assert passed(graded) == {"first": True, "second": True}
    assert graded.grading.calls.channel is not None  # the kernel's own connection was found among the strangers


def test_what_a_cell_prints_is_one_output_per_stretch_of_a_stream() -> None:
    # ipykernel sends prints on a timer, so a flush can split one line into two messages; the autograded
    # notebook shows adjacent text of one stream as one output, as Jupyter does, whatever the timing was.
    cell = (
        "import sys\nfrom IPython.display import display\n"
        "print('one line,', end='', flush=True)\nprint(' in two messages', flush=True)\n"
        "print('a warning', file=sys.stderr, flush=True)\nprint('more', flush=True)\n"
        "display('a display')\nprint('after it')\n"
    )
    outputs = grade([cell]).notebook.cells[0].outputs
    seen = [(o.output_type, o.get("name"), o.get("text", o.get("data", {}).get("text/plain"))) for o in outputs]
    assert seen == [
        ("stream", "stdout", "one line, in two messages\n"),
        ("stream", "stderr", "a warning\n"),
        ("stream", "stdout", "more\n"),
        ("display_data", None, "'a display'"),
        ("stream", "stdout", "after it\n"),
    ]
