"""04_lstm_time_evolution: an LSTM that predicts the time evolution of coupled oscillators."""

from mlphys.assignments import Assignment
from mlphys.assignments.lstm_time_evolution import cases

ASSIGNMENT = Assignment(
    id="04_lstm_time_evolution",
    notebook="lstm_time_evolution",
    title="An LSTM that predicts the time evolution of a physical system",
    cases=cases.cases,
)
