"""Simulated submissions for 06_boltzmann_mnist: the reference, the blank release, typical mistakes in the
building blocks, and broken or hostile weights files for the challenge.

Points (13 autograded; the written answer's 2 are graded by hand):

==================  ======  ==================================================================
test cell           points  judges
==================  ======  ==================================================================
test_energy         1       ``energy`` against the trusted energy (hypothesis over small RBMs)
test_conditionals   2       ``prob_h_given_v``, ``prob_v_given_h`` = exact ratios of Boltzmann
                            weights, for every state of tiny RBMs (hypothesis)
test_free_energy    1       ``free_energy`` = -log of the sum over h, by enumeration (hypothesis)
test_gibbs          2       histograms of ``gibbs_step`` (h and v) and of ``sample_rbm`` after
                            100 steps against the exact distributions (chi-squared, fixed seeds);
                            the rule that only the given rng draws (same seed, same samples;
                            another seed, other samples)
test_cd_gradient    3       ``cd_gradient``: the formula given its v_model (hypothesis), the
                            histogram of v_model after k steps (CD and PCD), long chains vs the
                            exact log-likelihood gradient; a seed fixes v_model
test_rbm_entry      1       the weights file loads as plain tensors of the track's shapes
test_loglik_pass    2       the board's held-out log-likelihood (exact for H25, conservative
                            for H500) above the track's pass band
test_loglik_good    1       ... above the good band
==================  ======  ==================================================================

The building blocks call each other (``gibbs_step`` uses the conditionals, ``cd_gradient`` uses
``gibbs_step``), so a wrong conditional also costs the sampling cells. The challenge cells judge only the
weights file, which the notebook's torch training writes; the demo trains the reference's ``train_rbm``
once and caches its weights under ``~/.cache/mlphys`` by the hash of what determines them.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import typing as t
from pathlib import Path

from mlphys.course.rbm import weights_filename
from mlphys.demo.case import Case, Materials, Mistake, assignment_cases, reference_cell, write_notebook
from mlphys.demo.weights import cached_file

PICKLE_MARKER = "/tmp/mlphys-demo-rbm-pickle-ran"  # the pickled payload would create this file
TRAINING_CELL = "training"
PREAMBLE = "import numpy as np\nimport torch\nfrom mlphys.course.mnist import binarize, load_mnist\n"
CHALLENGE_CELLS = ("test_rbm_entry", "test_loglik_pass", "test_loglik_good")

_ENERGY_WRONG_SIGN = """
def energy(v, h, W, a, b):
    return (v @ a) + (h @ b) + np.sum((v @ W) * h, axis=1)
"""

_CONDITIONALS_SWAPPED = """
def prob_h_given_v(v, W, b):
    return sigmoid(b + v @ W)


def prob_v_given_h(h, W, a):
    return sigmoid(a + h @ W)  # W where W.T is meant: v and h swapped
"""

_FREE_ENERGY_NO_BIAS = """
def free_energy(v, W, a, b):
    return -np.sum(np.logaddexp(0.0, b + v @ W), axis=1)
"""

_GIBBS = """
def gibbs_step(v, W, a, b, rng):
    rng = np.random.default_rng(rng)
    p_h = prob_h_given_v(v, W, b)
    h = (rng.random(p_h.shape) < p_h).astype(np.float64)
    p_v = prob_v_given_h(h, W, a)
    v_new = (rng.random(p_v.shape) < p_v).astype(np.float64)
    return h, v_new

"""

_SAMPLE_RBM = """
def sample_rbm(v_start, W, a, b, n_steps, rng):
    rng = np.random.default_rng(rng)
    v = v_start
    for _ in range(n_steps):
        _, v = gibbs_step(v, W, a, b, rng)
    return v
"""

# Right in distribution, but drawn from numpy's global generator: the seed it is given fixes nothing.
_GIBBS_GLOBAL_RANDOM = _GIBBS.replace("(rng.random(", "(np.random.random(") + _SAMPLE_RBM

_GIBBS_NO_BURN_IN = _GIBBS + """
def sample_rbm(v_start, W, a, b, n_steps, rng):
    _, v = gibbs_step(v_start, W, a, b, rng)  # one step, whatever n_steps says
    return v
"""


def _cd(data_term: str, model_term: str, norm_data: str = "len(v_data)", norm_model: str = "len(v_model)") -> str:
    return f"""
def cd_gradient(v_data, W, a, b, k, rng, v_chain=None):
    rng = np.random.default_rng(rng)
    v_model = v_data if v_chain is None else v_chain
    for _ in range(k):
        _, v_model = gibbs_step(v_model, W, a, b, rng)
    p_data = prob_h_given_v(v_data, W, b)
    p_model = prob_h_given_v(v_model, W, b)
    h_data = (rng.random(p_data.shape) < p_data).astype(np.float64)
    h_model = (rng.random(p_model.shape) < p_model).astype(np.float64)
    dW = {data_term} / {norm_data} - {model_term} / {norm_model}
    da = v_data.sum(axis=0) / {norm_data} - v_model.sum(axis=0) / {norm_model}
    db = p_data.sum(axis=0) / {norm_data} - p_model.sum(axis=0) / {norm_model}
    return dW, da, db, v_model
"""


_CD_WRONG_SIGN = _cd("v_model.T @ p_model", "v_data.T @ p_data").replace(
    "da = v_data.sum(axis=0) / len(v_data) - v_model.sum(axis=0) / len(v_model)",
    "da = v_model.sum(axis=0) / len(v_model) - v_data.sum(axis=0) / len(v_data)",
).replace(
    "db = p_data.sum(axis=0) / len(v_data) - p_model.sum(axis=0) / len(v_model)",
    "db = p_model.sum(axis=0) / len(v_model) - p_data.sum(axis=0) / len(v_data)",
)
_CD_SAMPLED_HIDDEN = _cd("v_data.T @ h_data", "v_model.T @ h_model")
_CD_SUMMED = _cd("v_data.T @ p_data", "v_model.T @ p_model", "1", "1")

# student id, description, replaced solution cells, test cells the mistake breaks
_MISTAKES: list[tuple[str, str, dict[str, str], tuple[str, ...]]] = [
    (
        "mistake_rbm_energy_sign",
        "the energy with the wrong overall sign (+a.v + b.h + vWh)",
        {"energy_solution": _ENERGY_WRONG_SIGN},
        ("test_energy",),
    ),
    (
        "mistake_rbm_conditional_swapped",
        "p(v | h) computed with h @ W instead of h @ W.T (v and h swapped); sampling and CD inherit it",
        {"conditionals_solution": _CONDITIONALS_SWAPPED},
        ("test_conditionals", "test_gibbs", "test_cd_gradient"),
    ),
    (
        "mistake_rbm_free_energy_no_bias",
        "the free energy without the visible bias term -a.v",
        {"free_energy_solution": _FREE_ENERGY_NO_BIAS},
        ("test_free_energy",),
    ),
    (
        "mistake_rbm_no_burn_in",
        "sample_rbm returns the state after a single Gibbs step, whatever n_steps (no burn-in)",
        {"gibbs_solution": _GIBBS_NO_BURN_IN},
        ("test_gibbs",),
    ),
    (
        "mistake_rbm_global_random",
        "gibbs_step draws from np.random instead of the rng it is given (a seed fixes nothing); CD inherits it",
        {"gibbs_solution": _GIBBS_GLOBAL_RANDOM},
        ("test_gibbs", "test_cd_gradient"),
    ),
    (
        "mistake_rbm_cd_wrong_sign",
        "the CD estimate with the wrong sign (model phase minus data phase)",
        {"cd_solution": _CD_WRONG_SIGN},
        ("test_cd_gradient",),
    ),
    (
        "mistake_rbm_cd_sampled_hidden",
        "CD with sampled hidden states where the probabilities p(h | v) are meant",
        {"cd_solution": _CD_SAMPLED_HIDDEN},
        ("test_cd_gradient",),
    ),
    (
        "mistake_rbm_cd_summed",
        "CD summed over the batch instead of averaged (no 1/B)",
        {"cd_solution": _CD_SUMMED},
        ("test_cd_gradient",),
    ),
]


def reference_settings(materials: Materials) -> dict[str, dict[str, t.Any]]:
    """The notebook's SETTINGS (training settings per track), read from its source."""
    for cell in materials.source().cells:
        if cell.cell_type == "code" and cell.source.startswith("SETTINGS = "):
            namespace: dict[str, t.Any] = {}
            exec(cell.source.split("\n\n")[0], namespace)
            return namespace["SETTINGS"]
    raise KeyError("no SETTINGS cell in the notebook")


def trained_weights(training: str, settings: dict[str, t.Any], track: str) -> Path:
    """The weights the reference ``train_rbm`` trains with ``settings`` for ``track``, cached."""

    from mlphys.course import rbm
    from mlphys.course.mnist import load_mnist

    data = load_mnist()

    def make(path: Path) -> None:
        namespace: dict[str, t.Any] = {}
        exec(PREAMBLE + training, namespace)
        W, a, b, _ = namespace["train_rbm"](data.train_images, **settings)
        os.replace(rbm.save_rbm(W, a, b, track, path.parent), path)

    what = f"06: the {track} RBM trained by the given cell with {settings} on MNIST ({data.origin})"
    return cached_file("rbm-", [training, repr(sorted(settings.items())), track, data.origin], make, what=what)


class PicklePayload:
    """Pickled code: unpickling it would run a shell command."""

    def __reduce__(self) -> tuple[t.Any, ...]:
        return (os.system, (f"touch {PICKLE_MARKER}",))


def _rewrite(source: Path, target: Path, change: t.Callable[[dict[str, t.Any]], None]) -> None:
    """Copy a weights file with ``change`` applied to its {"W", "a", "b"} tensors."""
    import torch

    state = torch.load(source, weights_only=True)
    change(state["rbm"])
    torch.save(state, target)


def _weights_attacks() -> list[tuple[str, str, t.Callable[[Path, Path], None]]]:
    import torch

    def nan(rbm: dict[str, t.Any]) -> None:
        rbm["W"][0, 0] = float("nan")

    def extreme(rbm: dict[str, t.Any]) -> None:
        rbm["W"] *= 100.0

    def peaked(rbm: dict[str, t.Any]) -> None:
        rbm["W"] = 20.0 * torch.sign(rbm["W"])  # within the size limit, but far too peaked for AIS

    def transposed(rbm: dict[str, t.Any]) -> None:
        rbm["W"] = rbm["W"].T.contiguous()

    def too_wide(rbm: dict[str, t.Any]) -> None:
        rbm["W"] = torch.cat([rbm["W"], torch.zeros(784, 1)], dim=1)
        rbm["b"] = torch.cat([rbm["b"], torch.zeros(1)])

    def huge(rbm: dict[str, t.Any]) -> None:
        rbm["W"] = torch.zeros(784, 5000)

    def pickled(_: Path, target: Path) -> None:
        with open(target, "wb") as handle:
            pickle.dump({"rbm": PicklePayload()}, handle)

    def changed(change: t.Callable[[dict[str, t.Any]], None]) -> t.Callable[[Path, Path], None]:
        return lambda source, target: _rewrite(source, target, change)

    return [
        ("attack_rbm_nan", "a weights file with a NaN weight", changed(nan)),
        ("attack_rbm_extreme", "weights 100 times too large (beyond the size limit)", changed(extreme)),
        ("attack_rbm_peaked", "weights of +-20: within the size limit, far too peaked", changed(peaked)),
        ("attack_rbm_transposed", "W saved transposed, (500, 784)", changed(transposed)),
        ("attack_rbm_too_wide", "501 hidden units entered for H500", changed(too_wide)),
        ("attack_rbm_huge", "a weights file of 15 MB (a W of 784 x 5000)", changed(huge)),
        ("attack_rbm_pickle", "a weights file holding pickled code", pickled),
        ("attack_rbm_no_file", "the notebook without its weights file", lambda source, target: None),
    ]


# The quick demo's cases beside the reference and the blank release: a sign error in CD's update (each
# notebook with a weights file is scored on the hidden digits, the slow part), and two weights files the
# grader refuses before scoring.
QUICK_MISTAKES = ("mistake_rbm_cd_wrong_sign",)
QUICK_ATTACKS = ("attack_rbm_transposed", "attack_rbm_pickle")


def cases(materials: Materials) -> list[Case]:
    points = materials.test_points()
    total = sum(points.values())
    challenge_points = sum(points[cell] for cell in CHALLENGE_CELLS)
    training = reference_cell(materials, TRAINING_CELL)
    settings = reference_settings(materials)
    track = "H500"
    weights = weights_filename(track)

    def with_reference_weights(nb_writer: t.Callable[[Path, Materials], None]) -> t.Callable[[Path, Materials], None]:
        def write(directory: Path, m: Materials) -> None:
            nb_writer(directory, m)
            shutil.copyfile(trained_weights(training, settings[track], track), directory / weights)

        return write

    mistakes = [Mistake(s, d, dict(r), tuple(b)) for s, d, r, b in _MISTAKES]
    built = assignment_cases(materials, mistakes, quick=QUICK_MISTAKES)
    result = []
    for case in built:  # every honest notebook comes with the reference's weights file, except the blank one
        if case.kind == "blank":
            result.append(case)
        else:
            write = with_reference_weights(case.write)
            result.append(dataclasses.replace(case, write=write))

    def attack(make: t.Callable[[Path, Path], None]) -> t.Callable[[Path, Materials], None]:
        def write(directory: Path, m: Materials) -> None:
            write_notebook(m.reference(), directory, m.notebook)
            make(trained_weights(training, settings[track], track), directory / weights)

        return write

    for student, description, make in _weights_attacks():
        # The building blocks are the reference's; a peaked model is scored, and fails both bands.
        expected = total - challenge_points + (points["test_rbm_entry"] if student == "attack_rbm_peaked" else 0)
        quick = student in QUICK_ATTACKS
        result.append(Case(student, materials.assignment, "attack", description, attack(make), expected, quick=quick))
    return result
