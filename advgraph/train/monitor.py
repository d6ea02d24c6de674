"""Parzen monitoring during training: a cheap estimate of how well G covers validation data."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..run.session import Session


def monitor_parzen(s: Session, pz) -> dict[str, Any]:
    """Parzen log-likelihood of validation data under a few samples of G. The noise comes from
    its own generator keyed by (seed, step), so monitoring never changes the training run."""
    from ..parzen import log_densities
    from ..sampling import sample_prior

    valid = s.splits.valid[: pz.valid] if pz.valid else s.splits.valid
    row: dict[str, Any] = {"step": s.step, "epoch": round(s.stream.epoch_float, 4),
                           "parzen_sigma": pz.sigma, "parzen_samples": pz.samples}
    if len(valid) == 0:
        row["parzen_valid"] = None
        return row
    rng = np.random.default_rng([s.spec.training.seed, s.step, 0x7A])
    z = sample_prior(s.program.prior, pz.samples, rng)
    y = None
    if s.program.conditional:  # the model's marginal: labels as often as in the training data
        y = s.splits.train_y[rng.integers(0, len(s.splits.train_y), pz.samples)]  # type: ignore[index]
    mu = s.trainer.generate(z, y)
    row["parzen_valid"] = float(log_densities(valid, mu, [pz.sigma])[0].mean())
    return row
