"""03_autoencoder_challenge: the Grand Autoencoder Challenge, scored out of process, with leaderboards."""

from mlphys.assignments import Assignment
from mlphys.assignments.autoencoder_challenge import cases
from mlphys.assignments.autoencoder_challenge.challenge import CHALLENGE, expect_valid_codes, expect_valid_images

ASSIGNMENT = Assignment(
    id="03_autoencoder_challenge",
    notebook="autoencoder_challenge",
    title="The Grand Autoencoder Challenge",
    cases=cases.cases,
    hidden_names={"expect_valid_codes": expect_valid_codes, "expect_valid_images": expect_valid_images},
    challenge=CHALLENGE,
)
