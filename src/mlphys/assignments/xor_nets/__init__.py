"""01_xor_nets: the forward pass of multilayer networks in numpy; XOR on the plane by hand."""

from mlphys.assignments import Assignment
from mlphys.assignments.xor_nets import cases

ASSIGNMENT = Assignment(
    id="01_xor_nets",
    notebook="xor_nets",
    title="XOR nets: the forward pass of a neural network",
    cases=cases.cases,
)
