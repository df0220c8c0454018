"""03_autoencoder_challenge: the Grand Autoencoder Challenge, scored out of process, with leaderboards."""

from mlphys.assignments import Assignment
from mlphys.assignments.autoencoder_challenge import cases

ASSIGNMENT = Assignment(
    id="03_autoencoder_challenge",
    notebook="autoencoder_challenge",
    title="The Grand Autoencoder Challenge",
    cases=cases.cases,
)
