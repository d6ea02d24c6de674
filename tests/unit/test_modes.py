"""`eval --modes` (advgraph.evaluate.modes) on samples placed by hand, whose answers are worked
out here: nearest centre, within 3 std, covered at the share, KL of the high-quality histogram
against uniform."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from advgraph.errors import UsageError
from advgraph.evaluate.modes import mode_stats, modes
from advgraph.ir import Prior
from advgraph.run.directory import RunDir
from advgraph.spec.gan import Gaussian1dData, Ring2dData

CENTRES = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])  # ring of 4, radius 2


def _placed() -> np.ndarray:
    return np.array(
        [[2.29, 0.0]] * 10  # mode 0, 0.29 from it: high quality (3 std = 0.3)
        + [[0.0, 1.69]] * 5  # mode 1, 0.31 from it: not high quality
        + [[-2.0, 0.1]] * 3  # mode 2, 0.1 from it: high quality
        + [[0.0, 0.0]] * 2  # the centre of the ring: 2 from every mode
    )


def test_hand_placed_samples():
    got = mode_stats(_placed(), CENTRES, std=0.1, share=0.1)  # a covered mode needs 2 of 20
    p = np.array([10, 3]) / 13
    kl = float((p * np.log(4 * p)).sum())  # KL(h ‖ uniform over 4 modes)
    assert got["modes"] == 4 and got["samples"] == 20
    assert got["covered_min_samples"] == 2
    assert got["counts"] == [10, 0, 3, 0]
    assert got["modes_covered"] == 2
    assert got["high_quality_share"] == pytest.approx(13 / 20)
    assert got["kl_uniform"] == pytest.approx(kl)
    # the share is a floor: 3 samples are not 20% of 20, 10 are
    assert mode_stats(_placed(), CENTRES, std=0.1, share=0.2)["modes_covered"] == 1


def test_uniform_over_the_modes_has_zero_kl_and_every_mode():
    x = np.repeat(CENTRES, 25, axis=0) + 0.05  # 25 per mode, 0.07 from its centre
    got = mode_stats(x, CENTRES, std=0.1)
    assert got["covered_min_samples"] == 1  # 20/2500 of 100 samples: 0.8, at least 1
    assert (got["modes_covered"], got["high_quality_share"]) == (4, 1.0)
    assert got["kl_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_one_mode_alone_has_kl_log_k():
    got = mode_stats(np.tile(CENTRES[1], (50, 1)), CENTRES, std=0.1)
    assert got["modes_covered"] == 1
    assert got["kl_uniform"] == pytest.approx(math.log(4))


def test_no_high_quality_sample_leaves_kl_undefined():
    x = np.array([[0.0, 0.0], [5.0, 5.0], [np.nan, 1.0]])
    got = mode_stats(x, CENTRES, std=0.1)
    assert got["kl_uniform"] is None  # null, documented: h over zero samples is no distribution
    assert (got["modes_covered"], got["high_quality_share"]) == (0, 0.0)


def test_default_is_20_of_2500():
    x = np.concatenate([np.tile(CENTRES[0], (20, 1)), np.tile(CENTRES[1], (19, 1)),
                        np.full((2461, 2), 9.0)])
    got = mode_stats(x, CENTRES, std=0.1)
    assert got["covered_min_samples"] == 20
    assert got["modes_covered"] == 1  # 20 covers, 19 does not


class FixedG:
    """A generator that puts its i-th sample on mode i mod 4 (noise ignored)."""

    def generate(self, z, y=None):
        return np.asarray(CENTRES[np.arange(len(z)) % 4], np.float32)


def _restored(tmp_path, data):
    run = RunDir(tmp_path / "ring")
    run.path.mkdir()
    return SimpleNamespace(run=run, step=7, weights="ema", trainer=FixedG(),
                           spec=SimpleNamespace(data=data),
                           program=SimpleNamespace(prior=Prior.gaussian(2, 0.0, 1.0),
                                                   classes=None))


def test_report_reads_the_data_and_is_logged(tmp_path):
    data = Ring2dData(dataset="toy-ring2d", modes=4, radius=2.0, std=0.1)
    rep = modes(_restored(tmp_path, data), samples=400, seed=3)
    assert (rep["modes_covered"], rep["high_quality_share"], rep["kl_uniform"]) == (4, 1.0, 0.0)
    line = json.loads((tmp_path / "ring" / "eval" / "metrics.jsonl").read_text())
    assert line["metric"] == "modes" and line["checkpoint_step"] == 7
    assert line["weights"] == "ema" and line["modes_covered"] == 4
    # the same samples against a ring of 8 of radius 2: modes 0, 2, 4, 6 of it
    data8 = Ring2dData(dataset="toy-ring2d", modes=8, radius=2.0, std=0.1)
    (tmp_path / "b").mkdir()
    rep8 = modes(_restored(tmp_path / "b", data8), samples=400)
    assert rep8["counts"] == [100, 0, 100, 0, 100, 0, 100, 0]
    assert rep8["modes_covered"] == 4 and rep8["kl_uniform"] == pytest.approx(math.log(2))


def test_other_data_is_refused_naming_why(tmp_path):
    with pytest.raises(UsageError, match="toy-ring2d.*toy-gaussian1d.*no modes"):
        modes(_restored(tmp_path, Gaussian1dData(dataset="toy-gaussian1d")))
