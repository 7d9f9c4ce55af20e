"""HEBO's GP as every model-based optimizer here uses it, and the random-state fence around it.

HEBO, torch and pymoo draw from global random state (pymoo 0.6.0 even reseeds numpy's), and HEBO
prints its GP's jitter retries to stdout. :func:`hebo_round` seeds every global generator from
the caller's ``rng`` for one suggestion round, silences stdout, and restores what it found, so the
same seed and history give the same suggestions and nothing outside notices.
"""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

EDGE = 1e-3
"""HEBO's input warping (Kumaraswamy CDF) has an infinite slope at 0 and 1, and a default on a
bound turns the GP's fit into NaNs: observations are kept this far inside the unit cube."""


@contextlib.contextmanager
def isolated_random_state(seed: int) -> Iterator[None]:
    """Seed numpy's, Python's and torch's global generators for a block, then restore them
    (torch's thread count too)."""
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    torch_state = torch.get_rng_state()
    threads = torch.get_num_threads()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch.manual_seed(seed)
    # A GP on tens of points gains nothing from threads, and the tuner shares its machine with
    # engines and stress clients whose timing it measures: one thread, no spinning workers.
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.set_rng_state(torch_state)


@contextlib.contextmanager
def hebo_round(rng: np.random.Generator) -> Iterator[None]:
    """One suggestion round's fence: seeded from ``rng``, global state restored, stdout quiet."""
    with (
        isolated_random_state(int(rng.integers(2**31 - 1))),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        yield


def unit_space(dim: int, names: list[str] | None = None) -> Any:
    """A HEBO design space of ``dim`` numeric columns on ``[EDGE, 1 - EDGE]``."""
    from hebo.design_space.design_space import DesignSpace

    names = names or [f"u{i}" for i in range(dim)]
    return DesignSpace().parse(
        [{"name": n, "type": "num", "lb": EDGE, "ub": 1.0 - EDGE} for n in names]
    )


class GP:
    """HEBO's GP (Matern-3/2 with Kumaraswamy input warping, ``get_model("gp")``) on unit-cube
    points, fitted on the columns the observations vary in.

    A constant column (say chunked prefill, True in every feasible config so far) makes the
    GP's input scaling divide by zero; the solver still moves along it, the model is simply
    indifferent there.
    """

    def __init__(self, x: NDArray[np.float64], y: NDArray[np.float64], epochs: int = 100) -> None:
        import torch
        from hebo.models.model_factory import get_model

        x = np.clip(np.asarray(x, dtype=float), EDGE, 1.0 - EDGE)  # (m, d)
        self.columns = [i for i in range(x.shape[1]) if np.ptp(x[:, i]) > 1e-9] or [0]
        self.model = get_model(
            "gp",
            len(self.columns),
            0,
            1,
            lr=0.01,
            num_epochs=epochs,
            verbose=False,
            noise_lb=8e-4,
            pred_likeli=False,
        )
        self.model.fit(
            torch.FloatTensor(x[:, self.columns]),
            torch.zeros(len(x), 0),
            torch.FloatTensor(np.asarray(y, dtype=float).reshape(-1, 1)),
        )

    @property
    def noise(self) -> Any:
        return self.model.noise

    def predict(self, x: Any, xe: Any) -> tuple[Any, Any]:
        """HEBO's model interface on torch tensors of all ``d`` columns."""
        mean, var = self.model.predict(x[:, self.columns], xe)
        return mean, var

    def predict_numpy(
        self, u: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Posterior mean and standard deviation at unit-cube rows ``u`` (n, d)."""
        import torch

        x = torch.FloatTensor(np.clip(np.asarray(u, dtype=float), EDGE, 1.0 - EDGE))
        with torch.no_grad():
            mean, var = self.predict(x, torch.zeros(len(x), 0))
        return (
            mean.numpy().reshape(-1).astype(float),
            np.sqrt(np.maximum(var.numpy().reshape(-1), 1e-12)).astype(float),
        )


def warp_output(y: NDArray[np.float64]) -> NDArray[np.float64]:
    """HEBO's output warping: Box-Cox when positive, else Yeo-Johnson; standardised if it
    degenerates.

    sklearn standardises what it returns, so anything but unit spread means the fit broke:
    values close together relative to their size (p95 latencies of 2967.4, 2967.7 and 2968.0 ms)
    drive Box-Cox's lambda to extremes and give numbers near 1e302, finite in float64 but
    infinite once the GP casts them to float32. Those fall back to plain standardisation."""
    from sklearn.preprocessing import power_transform

    def sound(out: NDArray[np.float64]) -> bool:
        return bool(np.isfinite(out).all()) and 0.5 <= float(out.std()) <= 1.5

    scaled = y / (y.std() or 1.0)
    try:
        method = "box-cox" if y.min() > 0 else "yeo-johnson"
        out = np.asarray(power_transform(scaled, method=method), dtype=float)
        if not sound(out) and method == "box-cox":
            out = np.asarray(power_transform(scaled, method="yeo-johnson"), dtype=float)
        if not sound(out):
            raise ValueError
        return out
    except (ValueError, RuntimeError, ArithmeticError):  # scipy's BracketError is a RuntimeError
        standard: NDArray[np.float64] = (y - y.mean()) / (y.std() or 1.0)
        return standard
