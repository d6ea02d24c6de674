"""advgraph.sweep.aggregate: the mean and standard error over seeds, against closed forms."""

from __future__ import annotations

import math

import pytest

from advgraph.sweep.aggregate import figures, mean_se, summarise


@pytest.mark.parametrize("values, mean, se", [
    ([2.0, 4.0], 3.0, 1.0),  # var (ddof=1) = 2, se = √(2/2)
    ([1.0, 2.0, 3.0, 4.0], 2.5, math.sqrt(5 / 3 / 4)),  # Σ(x−m)² = 5, var = 5/3
    ([7.0, 7.0, 7.0], 7.0, 0.0),
    ([-1.0, 1.0, -1.0, 1.0], 0.0, math.sqrt(4 / 3 / 4)),
])
def test_mean_and_standard_error_match_closed_forms(values, mean, se):
    m, s = mean_se(values)
    assert m == pytest.approx(mean, abs=1e-12)
    assert s == pytest.approx(se, abs=1e-12)


def test_one_member_has_no_standard_error_and_none_is_refused():
    assert mean_se([3.5]) == (3.5, None)
    with pytest.raises(ValueError, match="`values`"):
        mean_se([])


def test_large_offsets_keep_their_spread():
    # a naive E[x²] − E[x]² loses these to cancellation
    m, s = mean_se([1e9 + 1, 1e9 + 3])
    assert m == 1e9 + 2 and s == pytest.approx(1.0)


def test_summarise_groups_by_setting_and_counts_each_figure():
    members = [
        {"name": "a.s0", "seed": 0, "setting": "lr=1", "values": {"lr": 1}, "checkpoint_step": 9,
         "fid": 2.0, "kl": None},
        {"name": "a.s1", "seed": 1, "setting": "lr=1", "values": {"lr": 1}, "checkpoint_step": 9,
         "fid": 4.0, "kl": 0.5},
        {"name": "b.s0", "seed": 0, "setting": "lr=2", "values": {"lr": 2}, "checkpoint_step": 9,
         "fid": 10.0, "kl": None},
    ]
    one, two = summarise(members)
    assert one["setting"] == "lr=1" and one["values"] == {"lr": 1} and one["n"] == 2
    assert one["fid"] == {"mean": 3.0, "se": 1.0, "n": 2}
    assert one["kl"] == {"mean": 0.5, "se": None, "n": 1}  # the None left out
    assert "checkpoint_step" not in one and "seed" not in one
    assert two["n"] == 1 and two["fid"] == {"mean": 10.0, "se": None, "n": 1}
    assert "kl" not in two  # no member has it


def test_figures_of_each_kind_of_report():
    assert figures("parzen", {"mean_log_likelihood": -3.0, "stderr": 0.1}) == {
        "mean_log_likelihood": -3.0}
    assert figures("parzen", {"by_label": [{"label": 0, "mean_log_likelihood": -1.0},
                                           {"label": 1, "mean_log_likelihood": None}]}) == {
        "mean_log_likelihood[0]": -1.0, "mean_log_likelihood[1]": None}
    q = {"rows": {"G": {"n": 100, "fid": 5.0, "precision": 0.5, "recall": 0.25},
                  "train as samples": {"fid": 1.0}}}
    assert figures("quality", q) == {"fid": 5.0, "precision": 0.5, "recall": 0.25}
    m = {"modes_covered": 7, "high_quality_share": 0.9, "kl_uniform": None, "counts": [1]}
    assert figures("modes", m) == {"modes_covered": 7, "high_quality_share": 0.9,
                                   "kl_uniform": None}
    with pytest.raises(ValueError, match="`kind`"):
        figures("nope", {})


def test_sweep_curves_are_quantiles_over_members_aligned_by_step():
    from advgraph.figures import quantile_curves

    a = [{"step": 10, "d_loss": 1.0}, {"step": 20, "d_loss": 2.0}]
    b = [{"step": 20, "d_loss": 4.0}, {"step": 10, "d_loss": 3.0}]  # rows out of order
    c = [{"step": 10, "d_loss": 5.0}, {"step": 20, "g_loss": 9.0}]  # no d_loss at step 20
    steps, (lo, med, hi) = quantile_curves([a, b, c], "d_loss")
    assert steps.tolist() == [10, 20]
    # step 10 over {1, 3, 5}; step 20 over {2, 4} (linear interpolation between order stats)
    assert lo.tolist() == [2.0, 2.5] and med.tolist() == [3.0, 3.0] and hi.tolist() == [4.0, 3.5]


def test_the_table_gives_the_mean_to_its_standard_errors_precision():
    from advgraph.cli.sweep_eval import _mean_se

    assert _mean_se(6.875, 0.2205) == "6.88 ± 0.22"
    assert _mean_se(5, 0.35) == "5.00 ± 0.35"
    assert _mean_se(0.6552, 0.056) == "0.655 ± 0.056"
    assert _mean_se(116.74, 2.2) == "116.7 ± 2.2"
    assert _mean_se(3, None) == "3 (no s.e.)"
    assert _mean_se(3, 0.0) == "3 ± 0"
