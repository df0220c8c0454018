"""The in-kernel half of scoring a model: run inside a FRESH sandboxed kernel, never imported there.

The grader executes this file's source in a brand-new kernel after the student's model cell (and a
preamble of imports), then calls ``__mlphys_lstm_predict`` through the bridge with the student's class,
the weights it loaded itself and the observed halves of its hidden trajectories.  Everything here runs
beside untrusted code: the grader validates what comes back.  It may import only numpy, torch and
mlphys.course.
"""

import numpy as np


def __mlphys_lstm_predict(model_class, state, observed):
    """Predictions (batch, STEPS) of a fresh ``model_class()`` with weights ``state`` for the observed halves."""
    import torch

    model = model_class()
    model.load_state_dict({name: torch.as_tensor(np.asarray(value)) for name, value in state.items()})
    model.eval()
    predicted = model.predict(np.asarray(observed, dtype=np.float64))
    if hasattr(predicted, "detach"):
        predicted = predicted.detach().cpu().numpy()
    return np.asarray(predicted, dtype=np.float64)
