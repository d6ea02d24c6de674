"""The paper's Figure 1 and Theorem 1, measured on a 1-D run.

On a grid covering the data and G's samples: p_data (exact for toy-gaussian1d, a KDE of the
training data otherwise), p_g (a Gaussian KDE of G's samples), the trained D(x) and the optimal
D*(x) = p_data / (p_data + p_g) (Proposition 1). Reported: mean |D − D*| over the data's support,
JSD(p_data ‖ p_g), C(G) = −log 4 + 2·JSD (Theorem 1), and V(D, G) measured with the trained D.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.toy import normal_pdf
from ..errors import UsageError
from ..ir.objective import PROBABILITY_LOSSES
from ..run.sample_files import out_path
from ..run.samples import draw_samples
from ..spec.gan import Gaussian1dData
from .reports import write_report


def kde(points: np.ndarray, xs: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Gaussian KDE with Silverman's bandwidth."""
    p = np.asarray(points, np.float64).ravel()
    n = len(p)
    iqr = np.subtract(*np.percentile(p, [75, 25]))
    sd = min(p.std(), iqr / 1.349) if iqr > 0 else p.std()
    h = 0.9 * max(sd, 1e-12) * n ** -0.2
    out = np.empty(len(xs))
    for s in range(0, len(xs), chunk):
        u = (xs[s:s + chunk, None] - p[None, :]) / h
        out[s:s + chunk] = np.exp(-0.5 * u * u).sum(1) / (n * h * np.sqrt(2 * np.pi))
    return out


@dataclass
class Theory:
    mean_abs_d_minus_dstar: float
    jsd: float
    c_of_g: float  # −log 4 + 2·JSD
    v_measured: float  # V(D, G) with the trained D
    min_c: float  # −log 4, the global minimum
    data_mean: float
    data_std: float
    g_mean: float
    g_std: float

    def as_dict(self) -> dict:
        return asdict(self)


def measure(discriminate, samples: np.ndarray, data: np.ndarray, p_data=None,
            fake_for_v: np.ndarray | None = None, n_grid: int = 1200):
    """Returns (Theory, curves) where curves holds the grid, p_data, p_g, D and D*."""
    s = np.asarray(samples, np.float64).ravel()
    x = np.asarray(data, np.float64).ravel()
    lo = min(np.percentile(x, 0.05), np.percentile(s, 0.05))
    hi = max(np.percentile(x, 99.95), np.percentile(s, 99.95))
    pad = 0.25 * (hi - lo)
    xs = np.linspace(lo - pad, hi + pad, n_grid)
    pd = p_data(xs) if p_data is not None else kde(x, xs)
    pg = kde(s, xs)
    d = np.asarray(discriminate(xs[:, None].astype(np.float32)), np.float64)
    denom = pd + pg
    dstar = np.where(denom > 0, pd / np.where(denom > 0, denom, 1), 0.5)
    support = pd > 1e-3 * pd.max()
    gap = float(np.abs(d - dstar)[support].mean())
    m = 0.5 * (pd + pg)

    def kl(p, q):
        ok = p > 0
        return float(np.trapezoid(np.where(ok, p * np.log(np.where(ok, p, 1) / np.where(ok, q, 1)), 0), xs))

    jsd = 0.5 * kl(pd, m) + 0.5 * kl(pg, m)
    eps = 1e-12
    d_real = np.asarray(discriminate(x[:, None].astype(np.float32)), np.float64)
    fake = s if fake_for_v is None else np.asarray(fake_for_v, np.float64).ravel()
    d_fake = np.asarray(discriminate(fake[:, None].astype(np.float32)), np.float64)
    v = float(np.log(np.clip(d_real, eps, 1)).mean() + np.log(np.clip(1 - d_fake, eps, 1)).mean())
    th = Theory(gap, jsd, -np.log(4) + 2 * jsd, v, -np.log(4), float(x.mean()), float(x.std()),
                float(s.mean()), float(s.std()))
    return th, {"x": xs, "p_data": pd, "p_g": pg, "D": d, "D_star": dstar}


def plot(curves: dict, th: Theory, path, title: str = "", follow: bool = False):
    from ..figures import _key, _pyplot, _save_fig

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    xs = curves["x"]
    ax.plot(xs, curves["p_data"], "k", lw=1.5, label="p_data")
    ax.plot(xs, curves["p_g"], "g", lw=1.5, label="p_g")
    ax2 = ax.twinx()
    ax2.plot(xs, curves["D"], "b--", lw=1.2, label="D(x)")
    ax2.plot(xs, curves["D_star"], "b:", lw=1.2, label="D*(x)")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("D")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    _key(fig, handles=h1 + h2, labels=l1 + l2)  # off the curves
    ax.set_title(title or f"mean |D − D*| = {th.mean_abs_d_minus_dstar:.3f}, "
                          f"JSD = {th.jsd:.4f}, C(G) = {th.c_of_g:.4f}, V = {th.v_measured:.4f}")
    out = _save_fig(fig, path, follow)
    plt.close(fig)
    return out


def theory(restored, *, samples: int, seed: int, out: Path | None) -> dict[str, Any]:
    """`eval --theory`: the measures and the figure of a 1-D run, written to eval/theory.json."""
    if restored.program.data_shape != (1,):
        raise UsageError(f"`theory` needs 1-D data; this run's data is {restored.program.data_shape}")
    if restored.program.conditional:
        raise UsageError("`theory` compares D with D* of an unconditional GAN; this run is "
                         "conditional")
    if restored.program.loss not in PROBABILITY_LOSSES:
        raise UsageError(f"`theory` compares D's probability with D* = p_data / (p_data + p_g) "
                         f"and measures V(D, G) with log D; this run's D gives a raw score "
                         f"(training.loss: {restored.program.loss})")
    g = draw_samples(restored, samples, seed)
    data = restored.splits.test if len(restored.splits.test) else restored.splits.train
    spec = restored.spec.data
    p_data = None
    if isinstance(spec, Gaussian1dData):
        p_data = lambda xs: normal_pdf(xs, spec.mean, spec.std)  # noqa: E731
    fake = draw_samples(restored, min(samples, 20_000), seed + 1)
    th, curves = measure(restored.trainer.discriminate, g, data, p_data, fake)
    png = plot(curves, th, out_path(restored.run, out, "eval",
                                    f"theory-step-{restored.step:07d}.png"),
               follow=out is not None)
    report = {"run": restored.run.name, "checkpoint_step": restored.step,
              "weights": restored.weights, **th.as_dict(),
              "samples": samples, "seed": seed, "figure": str(png)}
    write_report(restored.run, "theory.json", report, "theory")
    return report
