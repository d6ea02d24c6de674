"""Shell completion as a shell asks for it: typer's protocol ($_ADVGRAPH_COMPLETE, COMP_WORDS,
COMP_CWORD) completes run names for every RUN argument and spec files for SPEC arguments, and
the script `--show-completion` prints works in a real bash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advgraph.cli import app
from tests.helpers import runs_root


def complete(line: str, env: dict | None = None) -> list[str]:
    """What bash would be offered for the last word of `line` (a trailing space: a new word)."""
    words = line.split(" ")
    r = CliRunner().invoke(app, [], prog_name="advgraph", env={
        "_ADVGRAPH_COMPLETE": "complete_bash", "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1), **(env or {})})
    assert r.exit_code == 0, r.output
    return r.output.split()


def make_runs(root: Path, *names: str) -> None:
    for n in names:
        (root / n).mkdir(parents=True)
        (root / n / "run.json").write_text("{}")


@pytest.fixture
def runs() -> Path:
    root = runs_root()
    make_runs(root, "ring-001", "ring-002", "mnist-001")
    (root / "half-made").mkdir()  # no run.json: not a run
    (root / "notes.txt").write_text("")
    return root


@pytest.mark.parametrize("line", ["advgraph sample ", "advgraph interpolate ", "advgraph eval ",
                                  "advgraph plot ", "advgraph export ", "advgraph rm ",
                                  "advgraph rm mnist-001 ",
                                  "advgraph train --resume ",
                                  "advgraph eval --parzen --samples 10 "])
def test_every_run_argument_completes_run_names(runs, line):
    assert complete(line) == ["mnist-001", "ring-001", "ring-002"]


@pytest.mark.parametrize("line,offered", [
    ("advgraph export r --format ", ["safetensors", "torchscript", "onnx"]),
    ("advgraph export r --format t", ["torchscript"]),
    ("advgraph eval r --baseline ", ["train", "kmeans"]),
    ("advgraph eval r --split v", ["valid"]),
    ("advgraph sample r --device c", ["cpu", "cuda"]),
    ("advgraph train specs/x.yaml --device ", ["auto", "cpu", "cuda"]),
])
def test_options_with_a_fixed_set_of_values_complete_them(line, offered):
    assert complete(line) == offered


def test_run_names_by_prefix_and_from_the_runs_directory_asked_for(runs, tmp_path):
    assert complete("advgraph sample ring") == ["ring-001", "ring-002"]
    assert complete("advgraph plot m") == ["mnist-001"]
    assert complete("advgraph plot x") == []
    make_runs(tmp_path / "elsewhere", "far-001")
    assert complete("advgraph sample --runs-dir elsewhere ") == ["far-001"]
    assert complete("advgraph sample ", env={"ADVGRAPH_RUNS": "elsewhere"}) == ["far-001"]
    assert complete("advgraph sample ", env={"ADVGRAPH_RUNS": "nowhere"}) == []


def test_spec_arguments_complete_yaml_files_and_directories(tmp_path):
    (tmp_path / "specs" / "deep").mkdir(parents=True)
    for f in ("specs/mnist.yaml", "specs/ring.yml", "specs/README.md", "top.yaml",
              ".hidden.yaml", "notes.txt"):
        (tmp_path / f).write_text("")
    assert complete("advgraph check ") == ["specs/", "top.yaml"]  # not .hidden.yaml, notes.txt
    assert complete("advgraph check specs/") == ["specs/deep/", "specs/mnist.yaml",
                                                 "specs/ring.yml"]
    assert complete("advgraph train specs/m") == ["specs/mnist.yaml"]
    assert complete("advgraph parity specs/r") == ["specs/ring.yml"]
    assert complete("advgraph check .h") == [".hidden.yaml"]
    assert complete(f"advgraph check {tmp_path}/sp") == [f"{tmp_path}/specs/"]
    assert complete("advgraph check nowhere/") == []


def test_data_commands_complete_and_take_folders_zips_and_specs(tmp_path):
    assert complete("advgraph data ") == ["inspect", "prepare"]
    (tmp_path / "photos").mkdir()
    for f in ("photos.zip", "photos.yaml", "photos.txt"):
        (tmp_path / f).write_text("")
    for command in ("inspect", "prepare"):
        assert complete(f"advgraph data {command} ph") == ["photos/", "photos.yaml",
                                                          "photos.zip"]
    assert complete("advgraph data inspect p --fit ") == ["crop", "pad"]


def test_show_completion_script_completes_in_bash(runs, tmp_path):
    """End to end: bash sources the script `--show-completion bash` prints and completes a
    line through it, calling `advgraph` (here `python -m advgraph`) in a fresh interpreter."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = subprocess.run([sys.executable, "-m", "advgraph", "--show-completion", "bash"],
                            capture_output=True, text=True, env=env)
    assert script.returncode == 0 and "_ADVGRAPH_COMPLETE=complete_bash" in script.stdout, \
        script.stderr
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "advgraph").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m advgraph "$@"\n')
    (bin_dir / "advgraph").chmod(0o755)
    (tmp_path / "completion.bash").write_text(script.stdout)
    probe = ('source completion.bash; COMP_WORDS=(advgraph sample ring); COMP_CWORD=2; '
             '_advgraph_completion advgraph; printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run([bash, "--norc", "-c", probe], capture_output=True, text=True,
                       env={**env, "PATH": f"{bin_dir}:{env['PATH']}"}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ring-001", "ring-002"]


PROBE = """
import sys
from advgraph.cli import main
try:
    main()
except SystemExit:
    pass
print("HEAVY=" + ",".join(sorted(m for m in ("torch", "cupy") if m in sys.modules)))
"""


def test_completion_imports_neither_torch_nor_cupy(runs):
    """Every Tab runs the CLI: it must stay as cheap as --help."""
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                       env={**os.environ, "_ADVGRAPH_COMPLETE": "complete_bash",
                            "COMP_WORDS": "advgraph sample ", "COMP_CWORD": "2"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["mnist-001", "ring-001", "ring-002", "HEAVY="]
