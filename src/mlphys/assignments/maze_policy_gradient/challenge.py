"""The maze challenge: a trained policy network hunts treasure in hidden mazes, scored so that it cannot be gamed.

For the one track (the original course's "really hard case": 15 x 15 mazes, 10 chests, 40 steps, chests
deleted), :class:`MazeChallenge` scores the loaded weights:

1. the hidden evaluation mazes (a public split for the running board, a private one for the final) and the
   random numbers that pick the actions are drawn here from the course secret; no sandbox sees the secret;
2. the mazes run here, in the grader.  The student's policy cell runs in ONE fresh sandboxed kernel, which
   builds the network and loads the weights once, then is called once per time step with the observations
   of all evaluation mazes at once (:meth:`FreshKernel.session`): 40 calls for a few hundred episodes; the
   public and private mazes are shuffled together, so a policy cannot tell which answers count where;
3. every answer is validated here (a (B, 5) array of finite, non-negative probabilities that sum to 1), and
   the grader samples each action with its own random stream, so a policy cannot choose its luck: it only
   ever says how likely each action is;
4. the return (chests collected) is computed here, per split; the page shows the paths of the best entries
   through the first public mazes.

The weights file is the network's state dict, as ``mlphys.course.maze.save_policy`` writes it.

:meth:`MazeChallenge.retrain` is the training check.  The challenge is to *learn* a policy by policy gradient,
and weights set by hand (a planner written into a value-iteration network's convolutions) would otherwise top
the board.  The check trains a fresh ``make_policy()`` with the entry's own ``train_policy`` within the notebook's
budget (600 batches of 64 episodes) in a world whose action numbers are relabelled (a permutation drawn from
the course secret that moves ``STAY``, so no symmetry of the grid undoes it), and plays it on the hidden mazes in
that world.  A network that learns from its rewards does as well there; weights that encode the meaning of the
actions, however they got into the network, do not.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import typing as t
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlphys.course import maze
from mlphys.grading.challenge import (
    Challenge,
    EntryProblem,
    RetrainBand,
    RetrainResult,
    Scored,
    Scoring,
    TimeUp,
    plain_state,
)
from mlphys.kernel import wire

TRACK = "HARD"
SIZE, CHESTS, STEPS = maze.HARD_SIZE, maze.HARD_CHESTS, maze.HARD_STEPS
PUBLIC_MAZES = 200
PRIVATE_MAZES = 200
SHOWN_MAZES = 4  # public mazes whose paths the page shows
PICTURE_SCALE = 3  # pixels per maze cell in the page's pictures
SUM_TOLERANCE = 1e-3  # how far a row of probabilities may sum from 1 (float32 softmax: about 1e-7)
EVALUATION_SECONDS = 180  # one entry's whole evaluation, the kernel's start included
POLICY_CELL = "policy_network"
POLICY_BUILDER = "make_policy"
TRAINING_CELL = "policy_training"
TRAINER = "train_policy"
RETRAIN_BATCHES, RETRAIN_BATCH_SIZE = 600, 64  # the notebook's training: train_policy(policy, batches=600)
RETRAIN_STEP_BUDGET = RETRAIN_BATCHES * RETRAIN_BATCH_SIZE * STEPS  # robot steps the retraining may take
RETRAIN_SEEDS = (0, 1)  # initialisations tried, the second only where the first does not reproduce the entry
# What the policy cell may rely on, as the notebook says.
PREAMBLE = "import numpy as np\nimport torch\nfrom torch import nn\n"
# What the training cell may rely on besides: the names of the notebook's first cell.
TRAINING_PREAMBLE = (
    PREAMBLE
    + "import time\nfrom mlphys.course.maze import *\n"
    + 'DEVICE = "cuda" if torch.cuda.is_available() else "cpu"\ntorch.set_num_threads(1)\n'
)
_LOAD, _PROBABILITIES = "__mlphys_maze_load", "__mlphys_maze_probabilities"
_RETRAIN = "__mlphys_maze_retrain"

# What the page's pictures show, on the challenge's colour map (0 floor ... 1 wall).
FLOOR, PATH, COLLECTED, CHEST, WALL = 0.0, 0.3, 0.55, 0.75, 1.0


def _streams(secret: str) -> list[np.random.SeedSequence]:
    digest = hashlib.sha256(f"maze-challenge:{secret}".encode()).digest()
    return np.random.SeedSequence(int.from_bytes(digest[:16], "little")).spawn(5)


@functools.lru_cache(maxsize=4)
def hidden_mazes(secret: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The public and private evaluation mazes of a course, drawn from its secret: split -> (walls, chests)."""
    public, private = _streams(secret)[:2]
    found = {}
    for split, seed, count in (("public", public, PUBLIC_MAZES), ("private", private, PRIVATE_MAZES)):
        mazes = maze.MazeBatch.random(count, SIZE, CHESTS, np.random.default_rng(seed))
        found[split] = (mazes.walls.copy(), mazes.chests.copy())
    return found


def action_draws(secret: str, batch: int, steps: int = STEPS) -> np.ndarray:
    """The grader's own uniform numbers in [0, 1), one per maze and step (steps, batch), from the secret.

    Every entry is evaluated with the same numbers (common random numbers: fair, and deterministic).
    """
    return np.random.default_rng(_streams(secret)[2]).random((steps, batch))


def evaluation_order(secret: str) -> np.ndarray:
    """Where each maze goes in the evaluation batch: public and private mazes shuffled together (from the
    secret), so that a policy cannot tell which of its answers count on the public board."""
    return np.random.default_rng(_streams(secret)[3]).permutation(PUBLIC_MAZES + PRIVATE_MAZES)


def action_relabelling(secret: str) -> np.ndarray:
    """The retraining world's action numbers: action ``k`` there moves as action ``relabelling[k]`` does here.

    A permutation drawn from the secret in which ``STAY`` moves, so that no rotation or reflection of the grid
    (which permute the four moves among themselves) can undo it.
    """
    rng = np.random.default_rng(_streams(secret)[4])
    while True:
        relabelling = rng.permutation(maze.N_ACTIONS)
        if relabelling[maze.STAY] != maze.STAY:
            return relabelling


def validate_probabilities(value: t.Any, batch: int) -> np.ndarray:
    """(batch, 5) float64 action probabilities, rows normalised exactly; EntryProblem if not acceptable.

    The policy computed its answer from hidden mazes, so the messages carry nothing it chose (no shape, no
    sum): a message must not become a channel that carries hidden data out.
    """
    want = (batch, maze.N_ACTIONS)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.shape != want:
        raise EntryProblem(
            f"Your policy must return one row of {maze.N_ACTIONS} action probabilities per maze (a tensor or array of "
            f"shape {want} for {batch} observations); it returned something else. Try it on a batch of mazes of "
            "your own in the notebook."
        )
    p = value.astype(np.float64)
    if not np.all(np.isfinite(p)):
        raise EntryProblem("Your policy returned probabilities that are not finite (NaN or infinity).")
    if np.any(p < 0):
        raise EntryProblem("Your policy returned negative probabilities.")
    sums = p.sum(axis=1)
    if not np.all(np.abs(sums - 1) <= SUM_TOLERANCE):
        raise EntryProblem(
            f"Your policy's probabilities must sum to 1 over the {maze.N_ACTIONS} actions (within {SUM_TOLERANCE:g}); "
            "some rows do not. Did you apply the softmax?"
        )
    return p / sums[:, None]


def sample(probabilities: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """One action per row by inverse transform sampling with the grader's uniform ``draws`` (batch,)."""
    cumulative = np.cumsum(probabilities, axis=1)
    return np.minimum((cumulative <= draws[:, None]).sum(axis=1), maze.N_ACTIONS - 1)


@dataclasses.dataclass
class Episodes:
    """What the grader saw of one evaluation: per maze the return, the wall bumps and the path (steps + 1, 2)."""

    returns: np.ndarray
    bumps: np.ndarray
    paths: np.ndarray


def run_episodes(
    walls: np.ndarray,
    chests: np.ndarray,
    probabilities_of: Callable[[np.ndarray], t.Any],
    draws: np.ndarray,
    relabelling: np.ndarray | None = None,
) -> Episodes:
    """Step all mazes together: observations out (0/1 bytes), validated probabilities back, actions sampled here.

    ``probabilities_of`` is the only thing that sees the mazes, one batch of observations per step.  With a
    ``relabelling`` (see :func:`action_relabelling`) the sampled action ``k`` moves as ``relabelling[k]``.
    """
    mazes = maze.MazeBatch(walls, chests)
    steps, batch = draws.shape
    returns, bumps = np.zeros(batch), np.zeros(batch, dtype=np.int64)
    paths = np.empty((batch, steps + 1, 2), dtype=np.int64)
    paths[:, 0] = mazes.positions
    for step in range(steps):
        observations = mazes.observations().astype(np.uint8)
        probabilities = validate_probabilities(probabilities_of(observations), batch)
        before = mazes.positions.copy()
        actions = sample(probabilities, draws[step])
        moves = actions if relabelling is None else relabelling[actions]
        returns += mazes.step(moves)
        bumps += (moves != maze.STAY) & np.all(mazes.positions == before, axis=1)
        paths[:, step + 1] = mazes.positions
    return Episodes(returns, bumps, paths)


def maze_pictures(walls: np.ndarray, chests: np.ndarray, paths: np.ndarray | None = None) -> np.ndarray:
    """Pictures (n, M * s, M * s) of mazes at the start: walls, chests and, if given, the robots' paths, on which
    the chests they collected show lighter."""
    image = np.where(walls, WALL, np.where(chests, CHEST, FLOOR))
    if paths is not None:
        for index, path in enumerate(paths):
            visited = np.zeros(walls.shape[1:], dtype=bool)
            visited[path[:, 0], path[:, 1]] = True
            image[index][visited] = np.where(chests[index][visited], COLLECTED, PATH)
    return np.kron(image, np.ones((PICTURE_SCALE, PICTURE_SCALE))).astype(np.float32)


class MazeChallenge(Challenge):
    key = "maze_challenge"
    title = "Maze Treasure Hunt"
    tracks = (TRACK,)
    track_notes: t.ClassVar[dict[str, str]] = {
        TRACK: f"{SIZE} x {SIZE} mazes, {CHESTS} chests, {STEPS} steps, chests deleted once collected."
    }
    metric = f"mean return (chests collected in {STEPS} steps) on hidden mazes"
    higher_is_better = True
    score_name = "return"
    detail_label = "wall bumps per episode"
    picture_caption = "the paths of the best entries' robots (in the grader's sampled episodes)"
    picture_cmap = "magma_r"  # floor light, path orange, collected chests red, chests left purple, walls black
    pass_bands = (2.0, 3.0)  # as the notebook's test cells: the original course's 2.1, and a clear margin
    weights_parts = ("policy",)
    max_weights_bytes = 20 * 2**20
    max_parameters = 2_000_000
    cells = (POLICY_CELL, TRAINING_CELL)
    preamble = PREAMBLE
    kernel_source = (Path(__file__).parent / "kernel.py").read_text()
    # Trained afresh, the reference network plays within about 10 % of its submitted return (it learns the
    # relabelled actions as well as the given ones: 3.2-3.5 from three initialisations against a submitted 3.3);
    # hand-set weights fall to a return of about 0.
    retrain_band = RetrainBand(rel_tol=0.25, abs_tol=0.25)

    def weights_filename(self, track: str) -> str:
        return maze.WEIGHTS_FILE

    def score(
        self, track: str, state: dict[str, dict[str, np.ndarray]], context: Scoring, *, relabelled: bool = False
    ) -> Scored:
        """Build the policy once, run all evaluation episodes in its kernel, compute the returns here (with the
        actions relabelled for the retraining check)."""
        entry = Scored(track, stage="policy")
        split = hidden_mazes(context.secret)
        order = evaluation_order(context.secret)  # batch position of each maze, public ones first
        walls, chests = np.empty((2, len(order), SIZE, SIZE), dtype=bool)
        walls[order] = np.concatenate([split["public"][0], split["private"][0]])
        chests[order] = np.concatenate([split["public"][1], split["private"][1]])
        draws = action_draws(context.secret, len(walls))
        kernel = context.fresh_kernel([POLICY_CELL])
        try:
            with kernel.session(what="policy", seconds=EVALUATION_SECONDS) as session:
                session.call(_LOAD, wire.RemoteRef(POLICY_BUILDER), state["policy"], saw_hidden_data=False)
                entry.stage = "episodes"
                relabelling = action_relabelling(context.secret) if relabelled else None
                episodes = run_episodes(
                    walls, chests, lambda obs: session.call(_PROBABILITIES, obs), draws, relabelling
                )
        except EntryProblem as exc:
            entry.problem = str(exc)
            return entry
        public, private = order[:PUBLIC_MAZES], order[PUBLIC_MAZES:]
        entry.public_cost = float(episodes.returns[public].mean())
        entry.private_cost = float(episodes.returns[private].mean())
        entry.detail = f"{episodes.bumps[public].mean():.1f}"
        shown = public[:SHOWN_MAZES]
        entry.picture = maze_pictures(walls[shown], chests[shown], episodes.paths[shown])
        entry.stage = "scored"
        return entry

    def retrain(self, track: str, submitted_cost: float, context: Scoring) -> RetrainResult:
        """Train a fresh network with the entry's own ``train_policy`` for the notebook's 600 batches (at most
        :data:`RETRAIN_STEP_BUDGET` robot steps) in the relabelled world, play it there on the hidden mazes and
        judge its return with ``context.retrain_band`` (by default :attr:`retrain_band`).

        Policy gradient does not always take off: the reference network stays near a return of 1 from about
        one initialisation in six.  So a second initialisation (:data:`RETRAIN_SEEDS`) is tried where the first
        does not reproduce the entry, and the better return counts.
        """
        band = context.retrain_band or self.retrain_band
        assert band is not None
        returns: list[float] = []
        try:
            for seed in RETRAIN_SEEDS:
                returns.append(self._retrained_return(track, seed, context))
                if band.reproduces(max(returns), submitted_cost, higher_is_better=True):
                    return RetrainResult("reproduced", max(returns), f"retrained return {max(returns):.2f}")
        except TimeUp as exc:
            return RetrainResult("timed out", None, f"the check did not finish within its time limit ({exc})")
        except EntryProblem as exc:
            return RetrainResult("flagged", None, f"Retraining failed: {exc}")
        limit = band.limit(submitted_cost, higher_is_better=True)
        return RetrainResult(
            "flagged",
            max(returns),
            f"retrained from fresh networks by its own train_policy ({RETRAIN_BATCHES} batches, actions relabelled, "
            f"{len(returns)} initialisations) the best return is {max(returns):.2f}, not {submitted_cost:.2f} (at "
            f"least {limit:.2f} needed)",
        )

    def _retrained_return(self, track: str, seed: int, context: Scoring) -> float:
        """The public return of a network trained afresh from ``seed`` in the relabelled world; EntryProblem or
        TimeUp where that cannot be had."""
        kernel = context.fresh_kernel([POLICY_CELL, TRAINING_CELL], preamble=TRAINING_PREAMBLE)
        with kernel.session(what="train_policy") as session:
            raw = session.call(
                _RETRAIN,
                wire.RemoteRef(POLICY_BUILDER),
                wire.RemoteRef(TRAINER),
                RETRAIN_BATCHES,
                seed,
                action_relabelling(context.secret).tolist(),
                RETRAIN_STEP_BUDGET,
                saw_hidden_data=False,
            )
        if not isinstance(raw, dict) or not isinstance(raw.get("steps_used"), int):
            raise EntryProblem("retraining handed back something other than trained weights")
        if raw["steps_used"] > RETRAIN_STEP_BUDGET:
            raise EntryProblem(
                f"training took {raw['steps_used']:,} robot steps from a budget of {RETRAIN_STEP_BUDGET:,}"
            )
        state = plain_state(
            {"policy": raw.get("policy")}, "the retrained weights", self.weights_parts, self.max_parameters
        )
        scored = self.score(track, state, context, relabelled=True)
        if scored.public_cost is None:
            raise EntryProblem(f"the retrained policy could not be scored: {scored.problem}")
        return scored.public_cost

    def page_originals(self, secret: str) -> np.ndarray:
        walls, chests = hidden_mazes(secret)["public"]
        return maze_pictures(walls[:SHOWN_MAZES], chests[:SHOWN_MAZES]).astype(float)


CHALLENGE = MazeChallenge()
