"""The in-kernel half of the maze challenge: run inside ONE fresh sandboxed kernel per evaluation, never
imported there.

The grader executes this file's source after the student's policy cell (and a preamble of imports), then
calls ``__mlphys_maze_load`` once with the student's builder and the weights it loaded itself, and
``__mlphys_maze_probabilities`` once per time step with the robots' observations of all evaluation mazes.
Only observations come in and only action probabilities go out; the grader validates them, samples the
actions with its own random stream and steps the mazes itself.  It may import only numpy, torch and
mlphys.course.
"""

import numpy as np

__mlphys_maze_policy = []  # the policy network, once built (a list: no ``global`` statement needed)


def __mlphys_maze_load(make_policy, state):
    """Build the student's network with ``make_policy()`` and load the weights ``state`` into it."""
    import torch

    policy = make_policy()
    policy.load_state_dict({name: torch.as_tensor(np.asarray(value)) for name, value in state.items()})
    policy.eval()
    __mlphys_maze_policy[:] = [policy]
    return True


def __mlphys_maze_probabilities(observations):
    """Action probabilities (B, 5) of the loaded policy for observations (B, M, M, 3), sent as 0/1 bytes."""
    import torch

    with torch.no_grad():
        out = __mlphys_maze_policy[0](torch.as_tensor(np.asarray(observations, dtype=np.float32)))
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    return np.asarray(out, dtype=np.float64)


def __mlphys_maze_retrain(make_policy, train_policy, batches, seed, relabelling, step_budget):
    """Train a fresh ``make_policy()`` with the student's ``train_policy(policy, batches=batches)`` in a world whose
    action numbers are relabelled, within a budget of robot steps; the trained weights and the steps used.

    The relabelling changes the course's moves in place (``MOVES``, which ``MazeBatch`` and ``MazeEnv`` step by), so
    every way of stepping the course's mazes sees it: action ``k`` now moves as action ``relabelling[k]`` did.
    """
    import torch

    from mlphys.course import maze

    maze.MOVES[:] = maze.MOVES[np.asarray(relabelling)].copy()
    used = [0]
    step = maze.MazeBatch.step

    def counted_step(self, actions):
        used[0] += int(np.size(actions))
        if used[0] > step_budget:
            raise RuntimeError(f"the training budget of {step_budget:,} robot steps is spent")
        return step(self, actions)

    maze.MazeBatch.step = counted_step
    torch.manual_seed(seed)
    policy = make_policy()
    train_policy(policy, batches=batches)
    return {
        "policy": {k: v.detach().cpu().numpy() for k, v in policy.state_dict().items()},
        "steps_used": used[0],
    }
