"""02_backprop: backpropagation from scratch, gradient descent, training on a function of the plane."""

from mlphys.assignments import Assignment
from mlphys.assignments.backprop import cases

ASSIGNMENT = Assignment(
    id="02_backprop",
    notebook="backprop",
    title="Backpropagation from scratch",
    cases=cases.cases,
)
