"""A sweep's eval reports summarised over seeds: the figures of each kind of report, and per
setting each figure's mean and standard error (pure: plain dicts and floats in and out).

The standard error is the sample standard deviation (ddof = 1) over √n: with one member there
is none (None), as one seed says nothing about the spread.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

# the figures of a report aggregated over seeds, per kind (quality: G's row)
QUALITY = ("fid", "precision", "recall", "density", "coverage", "score")
MODES = ("modes_covered", "high_quality_share", "kl_uniform")
THEORY = ("mean_abs_d_minus_dstar", "jsd", "c_of_g", "v_measured")


def mean_se(values: Iterable[float]) -> tuple[float, Optional[float]]:
    """The mean of `values` and its standard error, std(ddof=1) / √n (None when n = 1)."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("`values` is empty: nothing to average")
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, None
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var / n)


def figures(kind: str, report: dict[str, Any]) -> dict[str, Optional[float]]:
    """The figures of one member's `kind` report worth averaging over seeds (None where the
    report has none, e.g. the KL of a run without a high-quality sample)."""
    if kind == "parzen":
        if "by_label" in report:
            return {f"mean_log_likelihood[{row['label']}]": row.get("mean_log_likelihood")
                    for row in report["by_label"]}
        return {"mean_log_likelihood": report.get("mean_log_likelihood")}
    if kind == "quality":
        g = (report.get("rows") or {}).get("G", {})
        return {k: g[k] for k in QUALITY if k in g}
    names = {"modes": MODES, "theory": THEORY}.get(kind)
    if names is None:
        raise ValueError(f"`kind`: no figures known for {kind!r}")
    return {k: report.get(k) for k in names}


def summarise(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setting, in the order first met: {"setting", "values", "n", figure: {"mean", "se",
    "n"}}; `members` are {"setting", "values", figure: value, …} (other keys: "name", "seed",
    "checkpoint_step" are not figures). A figure's n counts the members that have it (a None
    is left out), so it can be below the setting's."""
    order: dict[str, list[dict[str, Any]]] = {}
    for m in members:
        order.setdefault(m["setting"], []).append(m)
    out = []
    for setting, group in order.items():
        row: dict[str, Any] = {"setting": setting, "values": group[0].get("values", {}),
                               "n": len(group)}
        for name in _figure_names(group):
            xs = [m[name] for m in group if m.get(name) is not None]
            if xs:
                mean, se = mean_se(xs)
                row[name] = {"mean": mean, "se": se, "n": len(xs)}
        out.append(row)
    return out


NOT_FIGURES = frozenset(("name", "seed", "setting", "values", "checkpoint_step"))


def _figure_names(group: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for m in group:
        names.update((k, None) for k in m if k not in NOT_FIGURES)
    return list(names)
