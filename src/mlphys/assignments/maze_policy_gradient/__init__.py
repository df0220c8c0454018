"""05_maze_policy_gradient: treasure hunting in a maze with policy gradient, and the maze challenge.

Part 1 (a softmax table trained with REINFORCE on one fixed maze) is judged by hidden tests in the notebook;
part 2's trained policy network is the challenge entry, scored in the grader (:mod:`.challenge`) on hidden
mazes, with leaderboards ranked by the mean return, highest first.
"""

from mlphys.assignments import Assignment
from mlphys.assignments.maze_policy_gradient import cases
from mlphys.assignments.maze_policy_gradient.challenge import CHALLENGE

ASSIGNMENT = Assignment(
    id="05_maze_policy_gradient",
    notebook="maze_policy_gradient",
    title="Treasure hunting in a maze with policy gradient",
    cases=cases.cases,
    challenge=CHALLENGE,
    uses_secret=True,
)
