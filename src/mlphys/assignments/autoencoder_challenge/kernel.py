"""The in-kernel half of the autoencoder challenge: run inside fresh sandboxed kernels, after the student's
architecture (and, for retraining, training) cell.

The grader executes this file's source in the kernel (it is not importable there).  The functions build,
load and call the student's modules and hand back plain numpy data, which the grader validates.
"""

import numpy as np


def _state_tensors(state):
    import torch

    return {k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}


def _state_arrays(module):
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _as_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _run_module(module_class, code_size, state, inputs):
    import torch

    module = module_class(code_size)
    module.load_state_dict(_state_tensors(state))
    module.eval()
    with torch.no_grad():
        return _as_numpy(module(torch.as_tensor(inputs, dtype=torch.float32)))


def mlphys_run_encoder(code_size, state, images):
    """Codes of ``images`` from the student's Encoder with weights ``state``."""
    return _run_module(Encoder, code_size, state, images)  # noqa: F821  (the student's cell defines it)


def mlphys_run_decoder(code_size, state, codes):
    """Images decoded from ``codes`` by the student's Decoder with weights ``state``."""
    return _run_module(Decoder, code_size, state, codes)  # noqa: F821


def mlphys_retrain(code_size, budget, seed):
    """Train a fresh entry with the student's own ``train`` on exactly ``budget`` new images."""
    import torch

    from mlphys.course.autoencoder import pick_device
    from mlphys.course.circles import ImageBudget

    torch.manual_seed(seed)
    encoder, decoder = Encoder(code_size), Decoder(code_size)  # noqa: F821
    images = ImageBudget(budget, seed=seed, device=pick_device())
    train(encoder, decoder, images)  # noqa: F821
    return {"encoder": _state_arrays(encoder), "decoder": _state_arrays(decoder), "images_used": images.used}
