"""The GP's output warping survives the objective values real short runs produce."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scoot.optim.surrogate import GP, warp_output

# p95 latencies of four short stress tests that all completed alike: Box-Cox's lambda runs off
# to an extreme and returned values near 1e302 (infinite in the GP's float32), which crashed a
# two-GPU-set study with HEBO's "No valid data in the dataset".
CLOSE = [2967.4, 2967.7, 2966.8, 2968.0]
# Negated throughputs (a maximised objective as a minimisation): Yeo-Johnson's bracket search
# raised scipy's BracketError.
NO_BRACKET = [-593.8, -595.5, -595.5, -595.8, -593.9]


@pytest.mark.parametrize("values", [CLOSE, NO_BRACKET, [5.0, 5.0], [1.0, 2.0, 40.0, 900.0]])
def test_warped_outputs_are_standardised_and_float32_finite(values: list[float]) -> None:
    out = warp_output(np.array(values).reshape(-1, 1))
    as32 = torch.FloatTensor(out)
    assert torch.isfinite(as32).all()
    # Standardised: no point further than sqrt(n) standard deviations from the mean.
    assert np.abs(out).max() <= np.sqrt(len(values)) + 1e-6
    # The order of the observations survives the warping.
    if len(set(values)) == len(values):
        assert list(np.argsort(out.ravel())) == list(np.argsort(values))


def test_a_gp_fits_close_latencies() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 3))
    gp = GP(x, warp_output(np.array(CLOSE).reshape(-1, 1)), epochs=10)
    mean, sd = gp.predict_numpy(x)
    assert np.isfinite(mean).all() and np.isfinite(sd).all()
