"""The tables and lines `eval` prints for its reports (Parzen, by label, sample quality,
theory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from rich.table import Table

from .common import console, err, print_wrote, warn


def print_modes(rep: dict[str, Any]) -> None:
    table = Table(title=f"Modes of the ring — run {rep['run']}, step {rep['checkpoint_step']}, "
                        f"{rep['samples']} samples, G's {rep['weights']} weights",
                  title_justify="left")
    for col in ("modes covered", "high-quality share", "KL(modes ‖ uniform)"):
        table.add_column(col, justify="right")
    kl = rep["kl_uniform"]
    table.add_row(f"{rep['modes_covered']} of {rep['modes']}",
                  f"{rep['high_quality_share']:.4f}",
                  "undefined" if kl is None else f"{kl:.4f}")
    console.print(table)
    console.print(f"high quality: within {rep['radius_std']:g} std ({rep['std']:g}) of the "
                  f"nearest mode; covered: at least {rep['covered_min_samples']} high-quality "
                  "samples" + (" (KL undefined: no sample is high quality)" if kl is None
                               else ""))


def print_theory(rep: dict[str, Any]) -> None:
    console.print(f"mean |D − D*| over the data's support: {rep['mean_abs_d_minus_dstar']:.4f}")
    console.print(f"JSD(p_data ‖ p_g): {rep['jsd']:.5f}")
    console.print(f"C(G) = −log 4 + 2·JSD: {rep['c_of_g']:.5f}   (minimum −log 4 = "
                  f"{rep['min_c']:.5f})")
    console.print(f"V(D, G) with the trained D: {rep['v_measured']:.5f}")
    console.print(f"p_data mean/std {rep['data_mean']:.3f}/{rep['data_std']:.3f}, "
                  f"p_g mean/std {rep['g_mean']:.3f}/{rep['g_std']:.3f}")
    print_wrote(Path(rep["figure"]))


def _nats(v: Optional[float]) -> str:
    """A log-likelihood for the table: 2 decimals, but no 60-digit integers for a tiny σ;
    null (a σ too small for float64) as −∞."""
    if v is None:
        return "−∞"
    return f"{v:.2f}" if abs(v) < 1e9 else f"{v:.4g}"


def print_parzen(rep: dict[str, Any]) -> None:
    table = Table(title=f"Parzen window — run {rep['run']}, step {rep['checkpoint_step']}",
                  title_justify="left")
    table.add_column("σ", justify="right")
    table.add_column("mean valid log-lik", justify="right")
    for row in rep["valid_scores"]:
        mark = " ← chosen" if row["sigma"] == rep["sigma"] else ""
        table.add_row(f"{row['sigma']:.4g}", f"{_nats(row['mean_log_likelihood'])}{mark}")
    if rep["valid_scores"]:
        console.print(table)
        grid = [row["sigma"] for row in rep["valid_scores"]]
        if len(grid) > 1 and rep["sigma"] in (min(grid), max(grid)):
            err.print(f"warning: the chosen σ {rep['sigma']:.4g} is at the edge of the grid "
                      f"[{min(grid):.4g}, {max(grid):.4g}]: the best σ may lie outside it; "
                      "widen it with --sigmas", markup=False)
    console.print(f"{rep['evaluated_split']} log-likelihood: {_nats(rep['mean_log_likelihood'])} "
                  f"± {_nats(rep['stderr'])} nats (σ = {rep['sigma']:.4g}, {rep['source']}, "
                  f"{rep['n_evaluated']} points, {rep['seconds']:.1f} s)")


def print_quality(rep: dict[str, Any]) -> None:
    clf = rep["classifier"]
    table = Table(title=f"Sample quality in the data's classifier features — run {rep['run']}, "
                        f"step {rep['checkpoint_step']}, against {rep['reference_n']} "
                        f"{rep['reference_split']} examples", title_justify="left")
    cols = [c for c in ("fid", "precision", "recall", "density", "coverage", "score")
            if any(c in r for r in rep["rows"].values())]
    table.add_column("")
    table.add_column("n", justify="right")
    for c in cols:
        table.add_column("FID" if c == "fid" else c, justify="right")
    for name, r in rep["rows"].items():
        table.add_row(name, str(r["n"]), *(f"{r[c]:.4g}" for c in cols))
    console.print(table)
    for name, about in rep.get("rows_about", {}).items():
        console.print(f"{name}: {about}", markup=False)
    for note in rep.get("notes", []):
        warn(note)
    where = clf["path"] or f"not cached ({clf.get('not_cached')})"
    console.print(f"classifier: test accuracy {clf['test_accuracy']:.4f} ({clf['classes']} "
                  f"classes; {where}); lower FID and higher precision/recall are better, "
                  "read G's row against the real data's")


def print_by_label(rep: dict[str, Any]) -> None:
    table = Table(title=f"Parzen window by class — run {rep['run']}, step "
                        f"{rep['checkpoint_step']}", title_justify="left")
    for col in ("class", "points", "σ", f"{rep['evaluated_split']} log-lik"):
        table.add_column(col, justify="right")
    for r in rep["by_label"]:
        if r["n_evaluated"] == 0:
            table.add_row(str(r["label"]), "0", "", "no points")
            continue
        table.add_row(str(r["label"]), str(r["n_evaluated"]), f"{r['sigma']:.4g}",
                      f"{_nats(r['mean_log_likelihood'])} ± {_nats(r['stderr'])}")
    console.print(table)
    console.print(f"{rep['source']}; σ {'fixed' if rep['sigma_fixed'] else 'chosen per class on its validation points'}; "
                  f"{rep['seconds']:.1f} s")
