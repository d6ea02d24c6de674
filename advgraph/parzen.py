"""Parzen-window log-likelihood (the paper's Table 1 protocol), fast and exact.

    log p(x) = logmeanexp_j(−‖x − μ_j‖² / 2σ²) − d·log(σ√(2π))

Squared distances come from matrix products, ‖x‖² + ‖μ‖² − 2x·μᵀ, computed once per block of
evaluation points and reused for every σ, so a 10-σ sweep costs one GEMM, not ten broadcasts of
a (batch × samples × dims) difference tensor as in the original script. Both sides are centred on
the samples' mean first: that shrinks the norms, and with them the float32 cancellation in the
expansion. Each point's terms are taken relative to its nearest sample, whose distance is then
computed exactly in float64: at small σ that term is almost the whole sum, so the result holds
to a direct float64 computation within 1e-3 nats (the tests and bench/parzen.py check it).
Exponents below −80 are clamped there: such terms are under e⁻⁸⁰ of the largest (nothing in a
float32 sum of 10⁴ terms), and the clamp keeps exp off its slow subnormal path, which had cost
more than half of the time.

However small σ is, nothing underflows to NaN: the nearest sample's term is taken out in
log space (d²_min / 2σ², divided by σ twice so σ² cannot underflow), and 1/2σ² is capped at the
largest float of the GEMM's dtype (a term past e⁻⁸⁰ is clamped whatever the cap, and 0 · cap
is 0 where ∞ · 0 was NaN). A log-likelihood is then finite, or −∞ only where d²_min / 2σ²
itself passes float64's range: select_and_score refuses such an estimate, naming the σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

PAPER_SIGMAS = tuple(float(s) for s in np.logspace(-1, 0, 10))


def default_sigmas(data: np.ndarray) -> tuple[float, ...]:
    """The σ grid when none is given. Data in [0, 1] (MNIST, TFD): the paper's
    logspace(−1, 0, 10), so Table 1's protocol is unchanged. Other data: logspace(−3, 0, 19)
    times its scale s, the root mean square of its per-dimension standard deviations. Three
    decades, because a good σ follows the modes' width, not the data's spread: on ring2d (s ≈ 1.4)
    it is about 0.006 for the training examples themselves and 0.03 for a briefly trained G,
    under the paper's grid and under [0.1, 1]·s alike. s comes from the first 10,000 examples
    (bounded memory for large image sets)."""
    x = np.asarray(data).reshape(len(data), -1)
    if x.size == 0 or (x.min() >= 0 and x.max() <= 1):
        return PAPER_SIGMAS
    s = float(np.sqrt(np.mean(np.var(x[:10_000], axis=0, dtype=np.float64))))
    if not s > 0 or not np.isfinite(s):
        return PAPER_SIGMAS
    return tuple(float(v) for v in np.logspace(-3, 0, 19) * s)
EXP_FLOOR = -80.0  # e^-80 ≈ 1.8e-35: still a normal float32, and negligible in the sum


def log_densities(x: np.ndarray, mu: np.ndarray, sigmas, chunk: int = 128,
                  device: str = "cpu", dtype: str = "float32", block: int = 2048) -> np.ndarray:
    """log p(x_i) for every σ: an array (len(sigmas), len(x)) in float64. Distances come from
    one GEMM per `block` points (large enough for the GEMM to run near its peak; 128 rows ran
    at about half of it), then every σ reads them `chunk` points at a time, so the
    (chunk × samples) slice stays in cache across the σ passes."""
    import torch

    dt = getattr(torch, dtype)
    dev = torch.device(device)
    x = np.asarray(x).reshape(len(x), -1)
    mu_np = np.asarray(mu).reshape(len(mu), -1)
    mu_t = torch.as_tensor(mu_np, dtype=dt, device=dev)
    n, d = mu_t.shape
    if x.shape[1] != d:
        raise ValueError(f"points have {x.shape[1]} dims, samples {d}")
    block = max(chunk, block // chunk * chunk)
    mu64 = torch.as_tensor(mu_np, dtype=torch.float64, device=dev)
    centre = mu_t.mean(0)
    mu_c = mu_t - centre
    mu_sq = (mu_c * mu_c).sum(1)
    sig = np.asarray(sigmas, dtype=np.float64)
    with np.errstate(over="ignore"):  # a tiny σ: ∞, capped in the GEMM's dtype below
        coef = 0.5 / sig / sig  # log-term = −coef·‖x − μ‖²
    cap = torch.finfo(dt).max
    const = torch.as_tensor([math.log(n) + d * math.log(s * math.sqrt(2 * math.pi)) for s in sig],
                            dtype=torch.float64, device=dev)
    out = torch.empty((len(sig), len(x)), dtype=torch.float64, device=dev)
    dist2 = torch.empty((min(block, len(x)), n), dtype=dt, device=dev)
    terms = torch.empty((chunk, n), dtype=dt, device=dev)
    with torch.no_grad():
        for b0 in range(0, len(x), block):
            xb = torch.as_tensor(x[b0:b0 + block], dtype=dt, device=dev)
            xc = xb - centre
            db = dist2[:len(xb)]
            torch.addmm(mu_sq.unsqueeze(0), xc, mu_c.T, alpha=-2.0, out=db)
            db.add_((xc * xc).sum(1, keepdim=True))
            for c0 in range(0, len(xb), chunk):
                xs, d2 = xb[c0:c0 + chunk], db[c0:c0 + chunk]
                r, start = len(xs), b0 + c0
                t = terms[:r]
                nearest, arg = d2.min(1)
                d2.sub_(nearest.unsqueeze(1)).clamp_(min=0.0)  # Δ_j = d²_j − d²_min ≥ 0
                x64 = torch.as_tensor(np.asarray(x[start:start + r], np.float64), device=dev)
                exact = (x64 - mu64[arg]).pow_(2).sum(1)  # d²_min in float64, from x itself
                for i, (s, c) in enumerate(zip(sig, coef)):
                    torch.mul(d2, -min(float(c), cap), out=t).clamp_(min=EXP_FLOOR).exp_()
                    # terms in [0, 1], the largest 1: a float32 sum is exact to ~1e-6 relative
                    lse = t.sum(1).double().log_() - exact.div(s).div_(s).mul_(0.5)
                    out[i, start:start + r] = lse - const[i]
    return out.cpu().numpy()


def log_densities_direct(x: np.ndarray, mu: np.ndarray, sigma: float) -> np.ndarray:
    """The definition in float64, no tricks: the test oracle."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    mu = np.asarray(mu, np.float64).reshape(len(mu), -1)
    d = x.shape[1]
    out = np.empty(len(x))
    for i, xi in enumerate(x):
        a = -((xi - mu) ** 2).sum(1) / (2 * sigma ** 2)
        m = a.max()
        out[i] = m + np.log(np.exp(a - m).mean()) - d * np.log(sigma * np.sqrt(2 * np.pi))
    return out


def log_densities_original(x: np.ndarray, mu: np.ndarray, sigma: float,
                           batch: int = 10) -> np.ndarray:
    """The original script's formulation (per σ, a batch × samples × dims difference tensor),
    in NumPy float32: the benchmark's baseline."""
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    mu = np.asarray(mu, np.float32).reshape(len(mu), -1)
    d = x.shape[1]
    out = np.empty(len(x))
    for s in range(0, len(x), batch):
        a = (x[s:s + batch, None, :] - mu[None, :, :]) / sigma
        t = -0.5 * (a ** 2).sum(2)
        m = t.max(1, keepdims=True)
        lme = m[:, 0] + np.log(np.exp(t - m).mean(1))
        out[s:s + batch] = lme - d * np.log(sigma * np.sqrt(2 * np.pi))
    return out


@dataclass
class ParzenResult:
    sigma: float
    mean: float
    stderr: float
    n_eval: int
    valid_scores: dict[float, float]  # σ → mean validation log-likelihood


def sharded_log_densities(x: np.ndarray, mu: np.ndarray, sigmas, chunk: int = 128,
                          device: str = "cpu", dist=None) -> np.ndarray:
    """log_densities, with the points split over the ranks of `dist` (every rank gets the
    whole result back)."""
    if dist is None:
        return log_densities(x, mu, sigmas, chunk, device)
    parts = np.array_split(np.arange(len(x)), dist.world)
    mine = log_densities(x[parts[dist.rank]], mu, sigmas, chunk, device)
    gathered = dist.gather(mine)
    return dist.broadcast(np.concatenate(gathered, axis=1) if dist.is_main else None)


def select_and_score(samples: np.ndarray, valid: np.ndarray | None, evaluate: np.ndarray,
                     sigmas=PAPER_SIGMAS, sigma: float | None = None, chunk: int = 128,
                     device: str = "cpu", dist=None) -> ParzenResult:
    """Pick σ by mean validation log-likelihood (unless fixed), then score `evaluate`:
    mean and standard error std/√N. With `dist`, the points are shared out over the ranks."""
    scores: dict[float, float] = {}
    fixed = sigma is not None
    if sigma is None:
        if valid is None or len(valid) == 0:
            raise ValueError("choosing σ needs validation points")
        ll = sharded_log_densities(valid, samples, sigmas, chunk, device, dist)
        scores = {float(s): float(v) for s, v in zip(sigmas, ll.mean(1))}
        sigma = max(scores, key=scores.get)
        if scores[sigma] == -math.inf:
            top = int(np.argmax(sigmas))
            raise UsageError("`sigmas`: every σ of the grid gives a mean validation "
                             f"log-likelihood of −∞: {_degenerate(ll[top], sigmas[top])}; "
                             "give larger σ")
    ll = sharded_log_densities(evaluate, samples, [sigma], chunk, device, dist)[0]
    if not np.isfinite(ll).all():
        option = "`sigma`" if fixed else "`sigmas` (σ chosen on the validation points)"
        raise UsageError(f"{option}: {_degenerate(ll, sigma)}, so their mean is −∞; give a "
                         "larger σ")
    return ParzenResult(float(sigma), float(ll.mean()), float(ll.std() / np.sqrt(len(ll))),
                        len(ll), scores)


def _degenerate(ll: np.ndarray, sigma: float) -> str:
    """Why an estimate at σ is −∞: its points' distance to the nearest sample over 2σ²
    passes float64's range, so their density is 0 in float64."""
    bad = int((~np.isfinite(ll)).sum())
    return (f"at σ = {sigma:.4g}, {bad:,} of {len(ll):,} points have log-likelihood −∞ (their "
            "squared distance to the nearest sample over 2σ² passes float64's range)")
