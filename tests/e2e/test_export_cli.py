"""`advgraph export` as a user runs it: G exported as safetensors, TorchScript and ONNX, each
loaded without advgraph's code (a plain torch rebuild, torch.jit.load in an interpreter where
advgraph cannot be imported, onnxruntime or ONNX's reference evaluator) and checked against
the samples `advgraph sample --npz` writes for the same noise."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import advgraph  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli  # noqa: E402

SHORT = ["--set", "data.train=2000", "--set", "data.valid=200", "--set", "data.test=200",
         "--set", "training.stop.steps=60", "--set", "training.checkpoint={steps: 30}",
         "--set", "training.log_every=30"]
MAXOUT_G = ["--set", "generator.layers[0]={type: maxout, name: h0, units: 64, pieces: 2, "
                     "init: {type: xavier}}"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One runs directory for the module: a ring run, a conditional ring run and a ring run
    whose G starts with maxout (exports never change a run, which the tests check)."""
    root = tmp_path_factory.mktemp("runs")
    for name, spec, extra in (("ring", "ring2d.yaml", []), ("cg", "ring2d-cgan.yaml", []),
                              ("mx", "ring2d.yaml", MAXOUT_G)):
        r = cli("train", SPECS / spec, "--name", name, "--runs-dir", root, *SHORT, *extra)
        assert r.exit_code == 0, r.stderr
    return root


def sampled(runs: Path, run: str, tmp_path: Path, n: int = 50, seed: int = 7):
    """`sample --npz`'s samples and labels, and the noise they were drawn from."""
    r = cli("sample", run, "--runs-dir", runs, "--npz", tmp_path / "s.npz", "--n", n,
            "--seed", seed)
    assert r.exit_code == 0, r.stderr
    with np.load(tmp_path / "s.npz") as f:
        x, y = f["samples"], (f["labels"] if "labels" in f.files else None)
    z = advgraph.open_run(runs / run).sample_noise(n, seed)
    return z, y, x


def export(runs: Path, run: str, *args) -> tuple[Path, dict]:
    r = cli("export", run, "--runs-dir", runs, *args)
    assert r.exit_code == 0, r.stderr
    wrote = [line.split(" ", 1)[1] for line in r.stdout.splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 3 and wrote[1].endswith(".spec.yaml") and wrote[2].endswith(".json")
    return Path(wrote[0]), json.loads(Path(wrote[2]).read_text())


def checkpoint(runs: Path, run: str, step: int = 60) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(runs / run / "checkpoints" / f"step-{step:07d}.safetensors")


def fingerprint(run_dir: Path) -> dict[str, str]:
    """Every file of a run but its exports, by content."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*"))
            if p.is_file() and "export" not in p.relative_to(run_dir).parts}


def rebuild(state: dict[str, torch.Tensor], graph: list[dict], classes: int | None):
    """G from the safetensors file and the metadata's graph, with plain torch (nn.Linear's
    convention: y = x @ W.T + b)."""
    def forward(z, y=None):
        env = {}
        for n in graph:
            op, a, w = n["op"], n["attrs"], {k: state[v] for k, v in n["tensors"].items()}
            ins = [env[i] for i in n["inputs"]]
            if op == "input":
                out = z if a["source"] == "z" else F.one_hot(y, classes).float()
            elif op == "concat":
                out = torch.cat(ins, dim=1)
            elif op == "dense":
                out = F.linear(ins[0], w["weight"], w["bias"])
            elif op == "maxout":
                h = F.linear(ins[0], w["weight"], w["bias"])
                out = h.view(len(h), a["units"], a["pieces"]).amax(dim=2)
            elif op == "relu":
                out = torch.relu(ins[0])
            elif op == "linear":
                out = ins[0]
            else:
                raise AssertionError(f"the rebuild does not know op {op!r}")
            env[n["name"]] = out
        return out
    return forward


def test_safetensors_export_is_in_torch_layouts_and_rebuilds_sample(runs, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    before = fingerprint(runs / "ring")
    z, _, x = sampled(runs, "ring", tmp_path)
    path, meta = export(runs, "ring")  # the default: under the run, latest checkpoint
    assert path == runs / "ring" / "export" / "G-step60.safetensors"
    ck = checkpoint(runs, "ring")
    state = load_file(path)
    assert sorted(state) == ["h0.bias", "h0.weight", "h1.bias", "h1.weight", "y.bias", "y.weight"]
    for name in ("h0", "h1", "y"):  # (in, out) in the checkpoint, nn.Linear's (out, in) here
        np.testing.assert_array_equal(state[f"{name}.weight"].numpy(), ck[f"G.{name}.weight"].T)
        np.testing.assert_array_equal(state[f"{name}.bias"].numpy(), ck[f"G.{name}.bias"])
    assert state["h0.weight"].shape == (128, 16)
    net = torch.nn.Sequential(torch.nn.Linear(16, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                              torch.nn.ReLU(), torch.nn.Linear(128, 2))
    net.load_state_dict({f"{i}.{k.split('.')[1]}": state[k] for i, k in
                         ((0, "h0.weight"), (0, "h0.bias"), (2, "h1.weight"), (2, "h1.bias"),
                          (4, "y.weight"), (4, "y.bias"))})
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(z)).numpy(), x, rtol=1e-5, atol=1e-6)

    ckpt_file = runs / "ring" / "checkpoints" / "step-0000060.safetensors"
    assert meta["checkpoint_sha256"] == hashlib.sha256(ckpt_file.read_bytes()).hexdigest()
    assert meta["step"] == 60 and meta["run"] == "ring" and meta["format"] == "safetensors"
    assert meta["prior"] == {"kind": "gaussian", "dim": 16, "mean": 0.0, "std": 1.0}
    assert meta["data_shape"] == [2] and meta["classes"] is None
    assert [i["name"] for i in meta["inputs"]] == ["z"] and meta["output"]["shape"] == ["N", 2]
    with safe_open(path, "pt") as f:  # the metadata travels in the header too
        assert json.loads(f.metadata()["advgraph"]) == meta
    spec = yaml.safe_load((path.parent / "G-step60.spec.yaml").read_text())
    assert spec == yaml.safe_load((runs / "ring" / "spec.yaml").read_text())
    assert fingerprint(runs / "ring") == before


def test_another_runs_files_are_never_replaced(runs, tmp_path):
    """The model and its sidecars must not land on any run's files: the checkpoints of
    another run, a run's eval reports, another run's run.json through a symbolic link."""
    before = {run: fingerprint(runs / run) for run in ("ring", "cg")}
    (runs / "ring" / "eval").mkdir(exist_ok=True)
    (runs / "ring" / "eval" / "parzen.json").write_text("{}")
    (tmp_path / "link.safetensors.json").symlink_to(runs / "cg" / "run.json")
    for out, owner in ((runs / "cg" / "checkpoints" / "step-0000030.safetensors", "cg"),
                       (runs / "cg" / "checkpoints", "cg"),
                       (runs / "ring" / "eval" / "parzen.onnx", "ring"),
                       (tmp_path / "link.safetensors", "cg")):
        _fails(runs, "ring", "--out", out, code=2,
               match=f"would write into the files of run {owner!r}")
    assert (runs / "ring" / "eval" / "parzen.json").read_text() == "{}"
    (runs / "ring" / "eval" / "parzen.json").unlink()
    assert {run: fingerprint(runs / run) for run in ("ring", "cg")} == before
    path, _ = export(runs, "ring", "--out", runs / "cg")  # beside another run's files is fine
    after = fingerprint(runs / "cg")
    assert {k: after[k] for k in before["cg"]} == before["cg"]
    for p in (path, path.with_name("G-step60.spec.yaml"),
              path.with_name("G-step60.safetensors.json")):
        p.unlink()


def test_an_older_checkpoint_into_a_directory(runs, tmp_path):
    path, meta = export(runs, "ring", "--checkpoint", "30", "--out", tmp_path / "out")
    assert path == tmp_path / "out" / "G-step30.safetensors" and meta["step"] == 30
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(load_file(path)["y.weight"],
                                  checkpoint(runs, "ring", 30)["G.y.weight"].T)


def _without_advgraph(tmp_path: Path, code: str) -> None:
    """Run `code` in a fresh interpreter in which advgraph and its backends cannot be
    imported."""
    block = ("import sys\n"
             "sys.modules.update(advgraph=None, advgraph_torch=None, advgraph_cupy=None)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", block + code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


TORCHSCRIPT = """
import json, os, numpy as np, torch
m = torch.jit.load("G.pt", _extra_files=(extra := {"advgraph.json": ""}))
args = [torch.from_numpy(np.load(f)) for f in ("z.npy", "y.npy") if os.path.exists(f)]
with torch.no_grad():
    for _ in range(3):  # TorchScript optimises the graph after its first runs
        out = m(*args)
    one = m(*[a[:1] for a in args])
np.save("out.npy", out.numpy()); np.save("one.npy", one.numpy())
json.dump({"meta": json.loads(extra["advgraph.json"]),
           "shapes": {k: list(v.shape) for k, v in m.state_dict().items()}}, open("info.json", "w"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("run", ["ring", "cg", "mx"])
def test_torchscript_reproduces_sample_exactly(runs, tmp_path, run):
    z, y, x = sampled(runs, run, tmp_path)
    path, meta = export(runs, run, "--format", "torchscript", "--out", tmp_path / "G.pt")
    np.save(tmp_path / "z.npy", z)
    if y is not None:
        np.save(tmp_path / "y.npy", y)
    _without_advgraph(tmp_path, TORCHSCRIPT)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), x)
    np.testing.assert_allclose(np.load(tmp_path / "one.npy"), x[:1], rtol=1e-6, atol=1e-6)
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["meta"] == meta
    assert info["shapes"]["h0.weight"][::-1] == list(checkpoint(runs, run)["G.h0.weight"].shape)


def test_conditional_and_maxout_safetensors_rebuild(runs, tmp_path):
    from safetensors.torch import load_file

    for run in ("cg", "mx"):
        z, y, x = sampled(runs, run, tmp_path)
        path, meta = export(runs, run, "--out", tmp_path / f"{run}.safetensors")
        if run == "cg":
            assert meta["classes"] == 8 and [i["name"] for i in meta["inputs"]] == ["z", "y"]
            assert meta["inputs"][1]["dtype"] == "int64"
        else:
            assert load_file(path)["h0.weight"].shape == (128, 16)  # units·pieces rows
        G = rebuild(load_file(path), meta["graph"], meta["classes"])
        with torch.no_grad():
            out = G(torch.from_numpy(z), None if y is None else torch.from_numpy(y))
        np.testing.assert_allclose(out.numpy(), x, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("run", ["ring", "cg"])
def test_onnx_reproduces_sample(runs, tmp_path, run):
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (the export extra)")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (the export extra)")
    z, y, x = sampled(runs, run, tmp_path)
    path, meta = export(runs, run, "--out", tmp_path / "G.onnx")  # the format from --out
    assert meta["format"] == "onnx"
    model = onnx.load(path)
    assert json.loads({p.key: p.value for p in model.metadata_props}["advgraph"]) == meta
    feeds = {"z": z, **({"y": y.astype(np.int64)} if y is not None else {})}
    try:
        import onnxruntime

        sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run_onnx = lambda f: sess.run(None, f)[0]  # noqa: E731
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        ev = ReferenceEvaluator(model)
        run_onnx = lambda f: ev.run(None, f)[0]  # noqa: E731
    np.testing.assert_allclose(run_onnx(feeds), x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_onnx({k: v[:1] for k, v in feeds.items()}), x[:1],
                               rtol=1e-5, atol=1e-5)  # the batch axis is dynamic


def _fails(runs, *args, code: int | None = None, match: str = "") -> str:
    r = cli("export", *args, "--runs-dir", runs)
    assert r.exit_code != 0 and (code is None or r.exit_code == code), (r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], r.stderr
    return lines[0]


def test_every_format_of_a_checkpoint_into_one_directory(runs, tmp_path):
    """The formats of one checkpoint share the spec beside them and each has its metadata."""
    for fmt in ("safetensors", "torchscript"):
        r = cli("export", "ring", "--format", fmt, "--out", tmp_path, "--runs-dir", runs)
        assert r.exit_code == 0, r.stderr
    assert f"kept {tmp_path / 'G-step60.spec.yaml'} (the same spec" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "G-step60.pt", "G-step60.pt.json", "G-step60.safetensors", "G-step60.safetensors.json",
        "G-step60.spec.yaml"]
    assert json.loads((tmp_path / "G-step60.pt.json").read_text())["model"] == "G-step60.pt"
    # a spec that differs (edited, or another run's) is not shared: it needs --force
    (tmp_path / "G-step60.spec.yaml").write_text("mine\n")
    (tmp_path / "G-step60.pt").unlink()
    (tmp_path / "G-step60.pt.json").unlink()
    _fails(runs, "ring", "--format", "torchscript", "--out", tmp_path, code=2,
           match="G-step60.spec.yaml exists; give --force")


def test_an_earlier_export_in_the_default_place_does_not_blame_out(runs, tmp_path):
    """Without --out the files go to the run's export/: a second export is refused naming the
    file, without an "--out:" prefix that says the user gave a path they did not give."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(runs / "ring", root / "ring", ignore=shutil.ignore_patterns("export"))
    assert cli("export", "ring", "--runs-dir", root).exit_code == 0
    line = _fails(root, "ring", code=2, match="exists; give --force")
    assert line.startswith(f"error: {root / 'ring' / 'export'}"), line


def test_an_earlier_export_is_replaced_only_with_force(runs, tmp_path):
    out = tmp_path / "G.safetensors"
    assert cli("export", "ring", "--out", out, "--runs-dir", runs).exit_code == 0
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(first) == ["G.safetensors", "G.safetensors.json", "G.spec.yaml"]
    (tmp_path / "G.spec.yaml").write_text("mine\n")  # the user's edit survives a refusal
    _fails(runs, "ring", "--out", out, code=2, match=f"{out} exists; give --force to replace "
                                                     "the 3 files there")
    assert (tmp_path / "G.spec.yaml").read_text() == "mine\n"
    r = cli("export", "ring", "--out", out, "--force", "--runs-dir", runs)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "G.spec.yaml").read_bytes() == first["G.spec.yaml"]


def test_format_choices_are_the_librarys_formats():
    """--format's choices are written out in the CLI (importing advgraph.export would slow
    --help): they must be the library's, whose own check names its parameter."""
    from advgraph.cli.export import Format
    from advgraph.errors import UsageError
    from advgraph.export import FORMATS, check_format

    assert [f.value for f in Format] == list(FORMATS)
    with pytest.raises(UsageError, match=r"^`fmt` must be one of safetensors, torchscript, "
                                         r"onnx, got 'pickle'$"):
        check_format("pickle", None)


def test_bad_input_is_one_line_and_leaves_the_run_alone(runs, tmp_path, monkeypatch):
    before = fingerprint(runs / "ring")
    r = cli("export", "ring", "--format", "pickle", "--runs-dir", runs)  # typer's choice
    assert r.exit_code == 2 and "Invalid value for '--format' / '-f'" in r.stderr, r.stderr
    _fails(runs, "nope", code=1, match="no run named 'nope'")
    _fails(runs, "ring", "--checkpoint", "45", code=1, match="no checkpoint at step 45")
    _fails(runs, "ring", "--out", tmp_path / "G.bin", code=2, match="'.bin'")
    _fails(runs, "ring", "--format", "onnx", "--out", tmp_path / "G.pt", code=2, match=".onnx")
    _fails(runs, "ring", "--out", runs / "ring" / "checkpoints" / "step-0000060.safetensors",
           code=2, match="would write into the files of run 'ring'")
    (tmp_path / "afile").write_text("")
    _fails(runs, "ring", "--out", tmp_path / "afile" / "G.pt", code=1, match="cannot write")
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        _fails(runs, "ring", "--out", tmp_path / "ro" / "G.pt", code=1, match="Permission denied")
    _fails(runs, "ring", "--out", tmp_path / "G.bin", code=2,
           match="'.bin' is not the extension of an export format")
    # an existing file is never replaced without --force
    (tmp_path / "partial" / "G.pt.json").mkdir(parents=True)
    _fails(runs, "ring", "--out", tmp_path / "partial" / "G.pt", code=2,
           match=f"{tmp_path / 'partial' / 'G.pt.json'} exists; give --force")
    # all or nothing: the metadata's path is a directory, so the model and spec go again
    _fails(runs, "ring", "--out", tmp_path / "partial" / "G.pt", "--force", code=1,
           match="nothing exported")
    assert [p.name for p in (tmp_path / "partial").iterdir()] == ["G.pt.json"]
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the export extra were not installed
    _fails(runs, "ring", "--format", "onnx", code=1, match="pip install 'advgraph[export]'")
    assert fingerprint(runs / "ring") == before
