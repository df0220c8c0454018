"""04_lstm_time_evolution: an LSTM that predicts the time evolution of coupled oscillators.

The trained model is scored through the challenge protocol (``scoring.MODEL``, one track), without a
leaderboard: the hidden tests call ``score_model`` and judge the error against the yardsticks.
"""

from mlphys.assignments import Assignment
from mlphys.assignments.lstm_time_evolution import cases, scoring

ASSIGNMENT = Assignment(
    id="04_lstm_time_evolution",
    notebook="lstm_time_evolution",
    title="An LSTM that predicts the time evolution of a physical system",
    cases=cases.cases,
    hidden_names={
        "score_model": scoring.score_model,
        "expect_valid_predictions": scoring.expect_valid_predictions,
        "expect_mse_below": scoring.expect_mse_below,
    },
    uses_secret=True,
)
