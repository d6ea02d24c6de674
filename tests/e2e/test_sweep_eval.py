"""eval, plot, sample, interpolate and export given a sweep, as a user runs them, on a sweep
trained briefly once for the module (2 settings × 2 seeds of the ring)."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli, runs_root  # noqa: E402

MEMBERS = ["sw.lr-0.001.s0", "sw.lr-0.001.s1", "sw.lr-0.0005.s0", "sw.lr-0.0005.s1"]


@pytest.fixture(scope="module")
def _trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVGRAPH_OFFLINE", "1")
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        r = cli("sweep", SPECS / "ring2d.yaml", "--seeds", "0-1",
                "--vary", "training.optimizer.lr=0.001,0.0005", "--name", "sw",
                "--set", "data.train=600", "--set", "data.valid=200", "--set", "data.test=200",
                "--set", "training.stop.steps=40", "--set", "training.checkpoint.steps=20",
                "--set", "training.log_every=10", "--runs-dir", root / "runs")
    assert r.exit_code == 0, r.stderr
    return root / "runs"


@pytest.fixture
def sweep(_trained) -> str:
    """A copy of the module's sweep and its members in the test's runs directory."""
    for p in _trained.iterdir():
        shutil.copytree(p, runs_root() / p.name)
    return "sw"


def _diverge(member: str) -> None:
    """Mark a member diverged in sweep.json, as the sweep does when one's losses blow up."""
    path = runs_root() / "sw" / "sweep.json"
    info = json.loads(path.read_text())
    for m in info["members"]:
        if m["name"] == member:
            m["status"] = "diverged"
    path.write_text(json.dumps(info))


def _oracle(values: list[float]) -> dict:
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else None
    return {"mean": pytest.approx(statistics.fmean(values)),
            "se": None if se is None else pytest.approx(se), "n": len(values)}


@pytest.mark.slow
def test_eval_sweep_summarises_members_evaluated_as_eval_member_would(sweep):
    r = cli("eval", sweep, "--modes", "--mode-samples", "500", "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["metric"] == "modes" and summary["sweep"] == "sw"
    assert [m["name"] for m in summary["members"]] == MEMBERS and summary["excluded"] == []
    # each member's figures are those of `eval MEMBER`, whose report is in the member's run
    for m in summary["members"]:
        own = json.loads((runs_root() / m["name"] / "eval" / "modes.json").read_text())
        alone = cli("eval", m["name"], "--modes", "--mode-samples", "500", "--json")
        assert alone.exit_code == 0, alone.stderr
        again = json.loads(alone.stdout)
        for key in ("modes_covered", "high_quality_share", "kl_uniform"):
            assert m[key] == own[key] == again[key]
        assert m["checkpoint_step"] == 40
    assert [s["setting"] for s in summary["settings"]] == [
        "training.optimizer.lr=0.001", "training.optimizer.lr=0.0005"]
    for s in summary["settings"]:
        mine = [m for m in summary["members"] if m["setting"] == s["setting"]]
        assert s["n"] == 2 and s["values"] == mine[0]["values"]
        assert s["high_quality_share"] == _oracle([m["high_quality_share"] for m in mine])
        assert s["modes_covered"] == _oracle([m["modes_covered"] for m in mine])
    written = json.loads((runs_root() / "sw" / "eval" / "modes.json").read_text())
    assert written["settings"] == json.loads(r.stdout)["settings"]


@pytest.mark.slow
def test_eval_sweep_table_leaves_out_diverged_members(sweep):
    _diverge("sw.lr-0.0005.s1")
    r = cli("eval", runs_root() / sweep, "--parzen", "--samples", "200", "--valid-limit", "100")
    assert r.exit_code == 0, r.stderr
    assert "training.optimizer.lr=0.001 " in r.stdout and "mean_log_likelihood" in r.stdout
    assert "±" in r.stdout and "(no s.e.)" in r.stdout  # the setting left with one seed
    assert "excluded (diverged or deleted): sw.lr-0.0005.s1" in r.stdout
    assert not (runs_root() / "sw.lr-0.0005.s1" / "eval").exists()  # never evaluated
    summary = json.loads((runs_root() / "sw" / "eval" / "parzen.json").read_text())
    one = summary["settings"][1]
    assert one["n"] == 1 and one["mean_log_likelihood"]["se"] is None
    assert summary["excluded"] == ["sw.lr-0.0005.s1"]
    lls = [m["mean_log_likelihood"] for m in summary["members"][:2]]
    assert summary["settings"][0]["mean_log_likelihood"] == _oracle(lls)


@pytest.mark.slow
def test_a_member_that_fails_is_reported_and_the_others_evaluated(sweep):
    ckpt = runs_root() / "sw.lr-0.001.s1" / "checkpoints" / "step-0000040.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    r = cli("eval", sweep, "--modes", "--mode-samples", "300", "--checkpoint", "40", "--json")
    assert r.exit_code == 1
    assert "error: member sw.lr-0.001.s1:" in r.stderr and "Traceback" not in r.stderr
    summary = json.loads(r.stdout)
    assert [f["name"] for f in summary["failed"]] == ["sw.lr-0.001.s1"]
    assert [m["name"] for m in summary["members"]] == [MEMBERS[0], *MEMBERS[2:]]
    assert summary["settings"][0]["n"] == 1
    for name in (MEMBERS[0], *MEMBERS[2:]):
        assert (runs_root() / name / "eval" / "modes.json").is_file()


@pytest.mark.slow
def test_a_usage_error_of_every_member_exits_2(sweep):
    r = cli("eval", sweep, "--theory", "--samples", "100")  # the ring is 2-D
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    for name in MEMBERS:
        assert f"error: member {name}: --theory needs 1-D data" in r.stderr
    assert "4 of 4 members failed" in r.stderr and not (runs_root() / "sw" / "eval").exists()


@pytest.mark.slow
def test_plot_sweep_draws_one_figure_and_names_a_damaged_file(sweep):
    _diverge("sw.lr-0.001.s0")
    r = cli("plot", sweep)
    assert r.exit_code == 0, r.stderr
    png = runs_root() / "sw" / "plots" / "metrics.png"
    assert r.stdout.strip() == f"wrote {png}" and Image.open(png).size[0] > 500
    out = runs_root() / "elsewhere.png"
    assert cli("plot", sweep, "--out", out).exit_code == 0 and out.is_file()
    metrics = runs_root() / "sw.lr-0.0005.s0" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": oops\n{"step": 50}\n')
    r = cli("plot", sweep)
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert f"{metrics}:" in r.stderr and "damaged" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", [["sample"], ["interpolate"], ["export"],
                                     ["eval", "--modes", "--nproc", "2"]])
def test_commands_of_one_run_name_a_member(sweep, command):
    r = cli(command[0], sweep, *command[1:])
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    if command[0] == "eval":
        assert "--nproc goes with a run" in r.stderr
    else:
        assert "sw is a sweep of 4 members (sw.lr-0.001.s0, sw.lr-0.001.s1, " in r.stderr
        assert "give one member, e.g. sw.lr-0.001.s0" in r.stderr
