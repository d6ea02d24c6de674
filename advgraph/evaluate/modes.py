"""`eval --modes`: the 8-Gaussians probe measured as the papers that use it measure it (Metz et
al. 2017, Unrolled GANs, section 3.1; Srivastava et al. 2017, VEEGAN, section 5.1).

N samples of G are each assigned to the nearest mode centre of the run's toy-ring2d data. A
sample is high quality when it lies within 3 standard deviations (the data's per-axis std σ,
as a Euclidean distance ≤ 3σ) of that centre. A mode is covered when at least `share` of the N
samples are high-quality samples of it (20 of 2,500 by default). Reported: the modes covered
(of K), the high-quality share, and KL(h ‖ uniform) in nats, h the histogram over the K modes
of the high-quality samples alone.

Edge case: with no high-quality sample h is not a distribution, so the KL is undefined: it is
reported as null (JSON) and printed as "undefined", never as a number a mean could take in;
modes covered is then 0 and the high-quality share 0, which say what happened.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..data.toy import ring2d_centres
from ..errors import UsageError
from ..run.samples import draw_samples
from ..spec.gan import Ring2dData
from .reports import write_report

RADII = 3.0  # a sample within 3 standard deviations of its mode is high quality
DEFAULT_SAMPLES = 2500  # Metz et al. and Srivastava et al. draw 2,500
DEFAULT_SHARE = 20 / 2500  # a mode with 20 high-quality samples of 2,500 is covered


def mode_stats(samples: np.ndarray, centres: np.ndarray, std: float,
               share: float = DEFAULT_SHARE) -> dict[str, Any]:
    """The probe's numbers for `samples` (N, 2) against mode `centres` (K, 2) of std `std`."""
    x = np.asarray(samples, np.float64)
    c = np.asarray(centres, np.float64)
    n, k = len(x), len(c)
    dist = np.sqrt(((x[:, None, :] - c[None, :, :]) ** 2).sum(-1))  # (N, K)
    nearest = dist.argmin(1)
    high = dist[np.arange(n), nearest] <= RADII * std
    high &= np.isfinite(x).all(1)  # a NaN sample is nowhere near a mode
    counts = np.bincount(nearest[high], minlength=k)
    need = max(1, math.ceil(share * n - 1e-9))  # samples a covered mode needs
    total = int(counts.sum())
    kl = None
    if total:
        p = counts[counts > 0] / total
        kl = float(max(0.0, (p * np.log(p * k)).sum()))
    return {"modes": k, "modes_covered": int((counts >= need).sum()),
            "high_quality_share": total / n, "kl_uniform": kl,
            "samples": n, "covered_min_samples": need, "share": share,
            "std": float(std), "radius_std": RADII, "counts": counts.tolist()}


def modes(restored: Any, *, samples: int = DEFAULT_SAMPLES, share: float = DEFAULT_SHARE,
          seed: int = 0) -> dict[str, Any]:
    """`eval --modes`: the probe on `samples` draws of G (seed `seed`), written to
    eval/modes.json and a line of eval/metrics.jsonl. Only toy-ring2d data has modes."""
    data = restored.spec.data
    if not isinstance(data, Ring2dData):
        raise UsageError(f"`modes` counts samples near the mode centres of toy-ring2d data (the "
                         f"8-Gaussians probe); run {restored.run.name!r} trained on "
                         f"{getattr(data, 'dataset', type(data).__name__)}, which has no modes "
                         "to count")
    if not 0 < share <= 1:
        raise UsageError(f"`share` must be in (0, 1], got {share}")
    x = draw_samples(restored, samples, seed)
    stats = mode_stats(x, ring2d_centres(data.modes, data.radius), data.std, share)
    report = {"run": restored.run.name, "checkpoint_step": restored.step,
              "weights": restored.weights, **stats, "seed": seed,
              "kl_note": "KL(high-quality samples' histogram over the modes ‖ uniform), nats; "
                         "null when no sample is high quality"}
    write_report(restored.run, "modes.json", report, "modes")
    return report
