"""Simulated submissions for 05_maze_policy_gradient: the reference, typical mistakes and attacks on the challenge.

Points (11 autograded, plus 2 for the written answer ``strategy_answer``, graded by hand):

=========================  ======  ==========================================================================
test cell                  points  judges
=========================  ======  ==========================================================================
test_table_probabilities   1       ``policy_probabilities`` (softmax of the table)
test_reinforce_exact       2       ``reinforce_update`` against the trusted update (hypothesis)
test_reinforce_properties  2       properties: sums over actions, equal returns change nothing, rewarded up
test_table_training        2       ``train_table``: its first update replayed by the grader (from z = 0 the batch is
                                   known), and its tables for two seeds, played by the grader: at least 4.5 of
                                   5 chests, and not the same table
test_policy_valid          1       the weights load into ``make_policy()``; valid probabilities at every step
test_policy_return         2       mean return on the public hidden mazes above 2.0
test_policy_competitive    1       ... above 3.0
=========================  ======  ==========================================================================

The board's training check (:meth:`MazeChallenge.retrain`) must flag ``attack_maze_hand_set``: a value-iteration
network whose weights are set by hand, not learned, which earns every point and tops the board.

``train_table`` calls the student's ``reinforce_update``, so a wrong update also costs the training cell.
The challenge cells are scored from the submitted weights alone, with the policy cell rebuilt in a fresh
sandbox.  The reference weights are trained here, in the trusted demo process, by the notebook's own
policy and training cells, and cached (:mod:`mlphys.demo.weights`); every challenge case reuses them.
The cohort is kept small: each submission runs the whole notebook (about half a minute).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from mlphys.assignments.maze_policy_gradient.challenge import POLICY_CELL, PREAMBLE
from mlphys.course import maze
from mlphys.demo.case import Case, Materials, reference_cell, write_notebook
from mlphys.demo.weights import cached_file

PROBABILITIES_CELL = "table_probabilities"
UPDATE_CELL = "reinforce_update"
TABLE_TRAINING_CELL = "table_training"
TRAINING_CELL = "policy_training"
_TRAINING_CALL = re.compile(r"train_policy\(policy, batches=([0-9_]+)\)")
# What the notebook's first cell gives the policy and training cells.
NOTEBOOK_NAMES = PREAMBLE + "from mlphys.course.maze import *  # noqa: F403\n"


def _changed(source: str, old: str, new: str) -> str:
    """``source`` with ``old`` replaced (it must be there: a mistake that changes nothing tests nothing)."""
    if old not in source:
        raise ValueError(f"the reference cell no longer contains {old!r}")
    return source.replace(old, new)


def _with_forward(policy: str, body: str) -> str:
    """The reference policy cell with ``forward`` replaced: ``body`` computes ``out`` from ``observations``
    (``p`` holds the reference's probabilities)."""
    return (
        policy
        + f"""

class _Changed(MazePolicy):
    def forward(self, observations):
        p = super().forward(observations)
        {body}
        return out


MazePolicy = _Changed
"""
    )


# In the grader's fresh kernel only the policy cell ran: no training function, and a batch of hundreds.
_IN_EVALUATION = "'train_policy' not in globals() and len(observations) > 100"

_STALL = f"out = p\n        if {_IN_EVALUATION}:\n            import time\n            time.sleep(3600)"

# A policy that behaves like the reference in the notebook and, once it detects the grader's evaluation,
# hunts for the course secret and the hidden mazes' seeds (environment, files, the grader's modules), keeps
# state across calls, and assumes the grader draws its actions with numpy's generator seeded 0: it places the
# boundaries of its probabilities so that each guessed draw lands on a planner's action.  Had it guessed the
# stream, it would steer every robot; against the grader's own stream it is about a random walk.
_LUCKY = '''

import glob
import os
from collections import deque


def _plan(view):
    walls, chests = view[..., 0] > 0, view[..., 1] > 0
    start = tuple(int(i) for i in np.argwhere(view[..., 2] > 0)[0])
    came, queue = {start: None}, deque([start])
    while queue:
        y, x = queue.popleft()
        if chests[y, x]:
            cell = (y, x)
            while came[cell] is not None and came[cell][0] != start:
                cell = came[cell][0]
            return 4 if came[cell] is None else came[cell][1]
        for action, (dy, dx) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
            nxt = (y + dy, x + dx)
            if not walls[nxt] and nxt not in came:
                came[nxt] = ((y, x), action)
                queue.append(nxt)
    return 4


class _Lucky(MazePolicy):
    loot = []

    def forward(self, observations):
        if not ('train_policy' not in globals() and len(observations) > 100):
            return super().forward(observations)
        if not hasattr(self, "guess"):
            self.guess = np.random.default_rng(0).random((40, len(observations)))
            self.step = 0
            for name, value in os.environ.items():
                if "SECRET" in name or "SEED" in name:
                    self.loot.append(value)
            for pattern in ("/proc/*/environ", "/*/gradebook.db", "/*/*/gradebook.db", "/tmp/*", "~/*"):
                for path in glob.glob(os.path.expanduser(pattern))[:50]:
                    try:
                        with open(path, "rb") as handle:
                            self.loot.append(handle.read(1000))
                    except OSError:
                        pass
            try:
                from mlphys.assignments.maze_policy_gradient.challenge import hidden_mazes

                self.loot.append(hidden_mazes(self.loot[0] if self.loot else ""))
            except Exception as exc:
                self.loot.append(repr(exc))
        u = self.guess[min(self.step, 39)]
        self.step += 1
        view = observations.numpy()
        width = 0.01
        out = np.zeros((len(view), 5))
        for b in range(len(view)):
            a = _plan(view[b])
            low, high = max(u[b] - width, 0.0), min(u[b] + width, 1.0)
            edges = np.concatenate([np.linspace(0.0, low, a + 1), np.linspace(high, 1.0, 5 - a)])
            edges[a] = 0.0 if a == 0 else low
            edges[a + 1] = 1.0 if a == 4 else high
            out[b] = np.diff(edges)
        return torch.as_tensor(out / out.sum(axis=1, keepdims=True), dtype=torch.float32)


MazePolicy = _Lucky
'''


# A value-iteration network (convolutions carry the chests' value through the free cells, as in Tamar et al.'s
# VIN) whose weights are set by hand: a planner, not a learned policy.  Its "training" sets the weights; the
# network finds about 5.6 chests, far above what the course's policy gradient learns.
_HAND_SET_POLICY = """class MazePolicy(nn.Module):
    '''A value-iteration network: convolutions propagate the value of the chests through the free cells.'''

    def __init__(self, iterations=15):
        super().__init__()
        self.iterations = iterations
        self.reward = nn.Conv2d(3, 1, 1)  # chests -> reward map
        self.blocked = nn.Conv2d(3, 1, 1)  # walls -> a large negative value
        self.neighbours = nn.Conv2d(1, 4, 3, padding=1, bias=False)  # the value of each neighbour
        self.discount = nn.Parameter(torch.tensor(0.5))
        self.sharpness = nn.Parameter(torch.tensor(1.0))

    def logits(self, observations):
        x = observations.permute(0, 3, 1, 2)
        reward, blocked = self.reward(x), self.blocked(x)
        value = reward + blocked
        for _ in range(self.iterations):
            best = torch.maximum(self.neighbours(value).max(dim=1, keepdim=True).values, value)
            value = torch.maximum(reward + self.discount * best, blocked + reward) + blocked
        q = self.neighbours(value)
        robot = observations[..., 2].flatten(1).argmax(dim=1)
        here = value.flatten(1).gather(1, robot[:, None])
        moves = q.flatten(2).gather(2, robot[:, None, None].expand(-1, 4, 1))[..., 0]
        return self.sharpness * torch.cat([moves, here - 0.01], dim=1)

    def forward(self, observations):
        return torch.softmax(self.logits(observations), dim=-1)


def make_policy():
    return MazePolicy()
"""

_HAND_SET_TRAINING = """def set_planner_weights(policy):
    '''Weights that make the network plan: chests reward 1, walls -1000, one neighbour per move.'''
    with torch.no_grad():
        for layer in (policy.reward, policy.blocked, policy.neighbours):
            layer.weight.zero_()
        policy.reward.bias.zero_()
        policy.blocked.bias.zero_()
        policy.reward.weight[0, 1] = 1.0
        policy.blocked.weight[0, 0] = -1000.0
        for k, (dy, dx) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
            policy.neighbours.weight[k, 0, 1 + dy, 1 + dx] = 1.0
        policy.discount.fill_(0.8)
        policy.sharpness.fill_(30.0)


def train_policy(policy, batches, batch_size=64, lr=3e-3, seed=0):
    '''"Trains" by setting the planner's weights.'''
    set_planner_weights(policy)
    return [5.6] * batches
"""


def hand_set_weights(path: Path) -> None:
    """Save the hand-set network's weights to ``path`` as its notebook would (no training: it takes a moment)."""
    namespace: dict = {}
    exec(NOTEBOOK_NAMES + _HAND_SET_POLICY + "\n" + _HAND_SET_TRAINING, namespace)
    network = namespace["make_policy"]()
    namespace["train_policy"](network, batches=1)
    maze.save_policy(network, str(path))


# A correct policy_probabilities in float32 (torch's softmax): the text asks for no dtype, so it keeps every point.
FLOAT32_PROBABILITIES = """def policy_probabilities(z):
    '''The softmax of z over its last axis, computed by torch in float32.'''
    return torch.softmax(torch.as_tensor(z, dtype=torch.float32), dim=-1).numpy()
"""

_NO_UPDATE = """def reinforce_update(z, states, actions, returns, learning_rate):
    raise NotImplementedError()
"""


def trained_table(materials: Materials) -> list:
    """The table the reference ``train_table()`` trains (seed 0), as nested lists: what a submission could paste in."""
    namespace: dict = {}
    cells = [reference_cell(materials, c) for c in (PROBABILITIES_CELL, UPDATE_CELL, TABLE_TRAINING_CELL)]
    exec(NOTEBOOK_NAMES + "\n".join(cells), namespace)
    return namespace["train_table"]()[0].round(4).tolist()


def pasted_table(materials: Materials) -> dict[str, str]:
    """Cells of a submission whose ``train_table`` returns a pasted trained table (whatever its seed) and whose
    ``reinforce_update`` is not written: nothing trains."""
    training = f"""_TRAINED = np.array({trained_table(materials)!r})


def train_table(updates=200, batch_size=32, learning_rate=1.0, seed=0):
    '''REINFORCE on the table maze from z = 0; returns (z, mean return of each batch).'''
    return _TRAINED.copy(), [5.0] * updates
"""
    return {UPDATE_CELL: _NO_UPDATE, TABLE_TRAINING_CELL: training}


def training_batches(materials: Materials) -> int:
    """How many batches the notebook trains its network for (its ``train_policy(policy, batches=N)`` call)."""
    for cell in materials.source().cells:
        found = _TRAINING_CALL.search(cell.source) if cell.cell_type == "code" else None
        if found:
            return int(found.group(1))
    raise KeyError("the notebook has no train_policy(policy, batches=N) call")


def reference_weights(materials: Materials) -> Path:
    """The reference network trained as the notebook trains it (its own cells, as many batches), cached."""
    policy, training = reference_cell(materials, POLICY_CELL), reference_cell(materials, TRAINING_CELL)
    batches = training_batches(materials)

    def make(path: Path) -> None:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the notebook; a small network on a shared machine trains fastest so
        try:
            namespace: dict = {}
            exec(NOTEBOOK_NAMES + policy + "\n" + training, namespace)
            torch.manual_seed(0)
            network = namespace["make_policy"]()
            namespace["train_policy"](network, batches=batches)
            maze.save_policy(network, str(path))
        finally:
            torch.set_num_threads(threads)

    what = f"05: the policy network trained by the given cells for {batches} batches"
    return cached_file("maze-", [NOTEBOOK_NAMES, policy, training, str(batches)], make, what=what)


# The quick demo's cases: an update that descends, negative "probabilities" and a policy that
# hunts for the hidden mazes and bets on a guessed random stream.
QUICK = (
    "ref_solution",
    "blank_release",
    "mistake_maze_update_sign",
    "attack_maze_negative",
    "attack_maze_lucky",
    "attack_maze_hand_set",
)


def cases(materials: Materials) -> list[Case]:
    points = materials.test_points()
    total = sum(points.values())
    update = reference_cell(materials, UPDATE_CELL)
    policy = reference_cell(materials, POLICY_CELL)
    table = ("test_reinforce_exact", "test_reinforce_properties", "test_table_training")
    returns = ("test_policy_return", "test_policy_competitive")
    challenge = ("test_policy_valid", *returns)

    def lose(*grade_ids: str) -> float:
        return total - sum(points[g] for g in grade_ids)

    def entry(
        replacements: dict[str, str] | Callable[[Materials], dict[str, str]] | None = None,
    ) -> Callable[[Path, Materials], None]:
        """The reference notebook with some cells replaced (or cells made from the materials), and the reference's
        weights file."""

        def write(directory: Path, m: Materials) -> None:
            cells = replacements(m) if callable(replacements) else replacements
            nb = m.with_solutions(cells) if cells else m.reference()
            write_notebook(nb, directory, m.notebook)
            shutil.copyfile(reference_weights(m), directory / maze.WEIGHTS_FILE)

        return write

    def hand_set(directory: Path, m: Materials) -> None:
        nb = m.with_solutions({POLICY_CELL: _HAND_SET_POLICY, TRAINING_CELL: _HAND_SET_TRAINING})
        write_notebook(nb, directory, m.notebook)
        hand_set_weights(directory / maze.WEIGHTS_FILE)

    def blank(directory: Path, m: Materials) -> None:
        write_notebook(m.blank(), directory, m.notebook)

    baseline = "np.asarray(returns, dtype=float) - np.mean(returns)"
    rows: list[tuple[str, str, str, Callable[[Path, Materials], None], float]] = [
        ("ref_solution", "reference", "the instructor's reference solution and its trained weights", entry(), total),
        ("blank_release", "blank", "the release notebook, submitted unchanged", blank, 0.0),
        (
            "honest_maze_float32_softmax",
            "honest",
            "policy_probabilities with torch's softmax in float32 (the text asks for no dtype): every point",
            entry({PROBABILITIES_CELL: FLOAT32_PROBABILITIES}),
            total,
        ),
        (
            "mistake_maze_update_sign",
            "mistake",
            "reinforce_update descends: z - learning_rate * gradient (the table unlearns its rewarded actions)",
            entry({UPDATE_CELL: _changed(update, "return z + learning_rate", "return z - learning_rate")}),
            lose(*table),
        ),
        (
            "mistake_maze_no_baseline",
            "mistake",
            "reinforce_update without the baseline: R instead of R - mean(R) (training stalls near 2 chests)",
            entry({UPDATE_CELL: _changed(update, baseline, "np.asarray(returns, dtype=float)")}),
            lose(*table),
        ),
        (
            "mistake_maze_actions_misaligned",
            "mistake",
            "reinforce_update flattens the actions step-major and the states episode-major (actions of other steps)",
            entry({UPDATE_CELL: _changed(update, "np.ravel(actions)", "np.ravel(np.transpose(actions))")}),
            lose("test_reinforce_exact", "test_table_training"),
        ),
        (
            "mistake_maze_unnormalised",
            "mistake",
            "forward returns exp(logits): probabilities that do not sum to 1",
            entry({POLICY_CELL: _with_forward(policy, "out = torch.exp(self.logits(observations))")}),
            lose(*challenge),
        ),
        (
            "mistake_maze_blind",
            "mistake",
            "forward feeds zeros to the network instead of the observations: the same move everywhere",
            entry({POLICY_CELL: _with_forward(policy, "out = super().forward(torch.zeros_like(observations))")}),
            lose(*returns),
        ),
        (
            "attack_maze_negative",
            "attack",
            "probabilities with negative entries that still sum to 1 (2 p - 0.2), to steer the sampling",
            entry({POLICY_CELL: _with_forward(policy, "out = 2 * p - 0.2")}),
            lose(*challenge),
        ),
        (
            "attack_maze_stall",
            "attack",
            "forward sleeps for an hour once it detects the grader's evaluation",
            entry({POLICY_CELL: _with_forward(policy, _STALL)}),
            lose(*challenge),
        ),
        (
            "attack_maze_lucky",
            "attack",
            "detects the evaluation, hunts for the secret and the hidden mazes, and bets on a guessed random stream",
            entry({POLICY_CELL: policy + _LUCKY}),
            lose(*returns),
        ),
        (
            "attack_maze_pasted_table",
            "attack",
            "train_table returns a pasted trained table whatever its seed, and reinforce_update is not written",
            entry(pasted_table),
            lose(*table),
        ),
        (
            "attack_maze_hand_set",
            "attack",
            "a value-iteration network with hand-set weights, not learned: every point, top of the board, flagged by "
            "the board's training check",
            hand_set,
            total,
        ),
    ]
    a = materials.assignment
    flagged = {"attack_maze_hand_set"}
    return [
        Case(student, a, kind, text, write, expected, flagged_by_retraining=student in flagged, quick=student in QUICK)
        for student, kind, text, write, expected in rows
    ]
