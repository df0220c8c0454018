"""06_boltzmann_mnist: a restricted Boltzmann machine trained with contrastive divergence on MNIST, with a
challenge ranked by the held-out log-likelihood, from the weights file alone: exact up to 25 hidden units,
conservative beyond (the lowest of AIS, RAISE and a certain bound; see :mod:`.scoring`)."""

from mlphys.assignments import Assignment
from mlphys.assignments.boltzmann_mnist import ais, cases, exact
from mlphys.assignments.boltzmann_mnist.scoring import CHALLENGE, expect_band

ASSIGNMENT = Assignment(
    id="06_boltzmann_mnist",
    notebook="boltzmann_mnist",
    title="A restricted Boltzmann machine that dreams MNIST digits",
    cases=cases.cases,
    hidden_names={"exact_rbm": exact, "ais": ais, "expect_band": expect_band},
    challenge=CHALLENGE,
)
