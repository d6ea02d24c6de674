"""The README's examples run as written, on toy-sized data.

What is taken from README.md:
- every command line in its plain code blocks (```` ``` ```` without a language, or bash/sh/
  console): each `&&`-separated part of a line that starts with `.venv/bin/advgraph` or
  `advgraph`, without its trailing `# comment`;
- every command of the Commands table (its first column): these are synopses with
  placeholders (SPEC, RUN, [optional parts]), so they are not run; instead every command they
  name must exist and every `--option` they show must be in that command's `--help`.

How a code-block command is mapped onto toy data (the command's own words never change, apart
from the last rule):
- `.venv/bin/advgraph ARGS` runs as `advgraph ARGS` in this process (`tests.helpers.cli`), in
  README order, all in one runs directory and one working directory holding the repository's
  `specs/` (so runs named by one command exist for the next);
- `~` is a home directory made by the test, whose `~/mnist` holds small MNIST-shaped IDX files
  (`make_mnist_dir`), and `$ADVGRAPH_DATA` points at the same files, so a spec that finds its
  dataset by itself (fashion-mnist) finds them there; nothing is downloaded (ADVGRAPH_OFFLINE);
- `~/photos` holds a folder of the user's own images, two classes of drawn shapes
  (`make_shapes`: 12 of each, and one broken file);
- `train SPEC` (a new run) gets `--set` overrides appended that make it tiny: two steps
  (`training.stop`), and for image datasets 250 training and 50 validation examples, for toy
  data 1,000 / 100 / 100, for a folder of images (`dataset: images`) batches of 8.

A command must exit 0. A command that needs the cupy backend's host executor is skipped (with
the reason) where that executor cannot build; no other command is skipped.

The ```python blocks of the Python API section run as written too, in one namespace, against a
short ring2d run named `ring` (the name they open).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.conftest import ROOT, make_mnist_dir  # noqa: E402
from tests.helpers import cli, make_shapes  # noqa: E402

README = ROOT / "README.md"
TINY = {"image": ["--set", "training.stop={steps: 2}", "--set", "data.train=250",
                  "--set", "data.valid=50"],
        "toy": ["--set", "training.stop={steps: 2}", "--set", "data.train=1000",
                "--set", "data.valid=100", "--set", "data.test=100"],
        "images": ["--set", "training.stop={steps: 2}", "--set", "training.batch_size=8"]}


def code_block_commands(text: str) -> list[str]:
    """The advgraph command lines of the README's plain code blocks, in order."""
    out, lang = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            lang = line[3:].strip() if lang is None else None
            continue
        if lang not in ("", "bash", "sh", "console"):
            continue
        line = re.split(r"\s#", line, maxsplit=1)[0]
        for part in line.split("&&"):
            words = shlex.split(part)
            if words and words[0] in (".venv/bin/advgraph", "advgraph"):
                out.append(shlex.join(words[1:]))
    return out


def table_synopses(text: str) -> list[str]:
    """The Commands table's first column: each code span that starts with `advgraph` (or `…`,
    the README's short form of it); a span of options alone (`--by-label`) belongs to the
    command before it."""
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    out: list[str] = []
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        for span in re.findall(r"`([^`]+)`", row.split(" | ")[0]):
            if span.startswith(("advgraph", "…")):
                out.append("advgraph" + span.split("advgraph", 1)[-1] if "advgraph" in span
                           else "advgraph" + span[1:])
            elif span.startswith("-") and out:
                out[-1] += " " + span
    return out


def python_blocks(text: str) -> list[str]:
    """The ```python code blocks of the README's Python API section, in order."""
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", section, flags=re.M | re.S)


COMMANDS = code_block_commands(README.read_text(encoding="utf-8"))


def test_the_readme_has_commands_to_check():
    """The extraction itself: it finds the examples (a broken parser would check nothing)."""
    assert "train specs/toy1d.yaml" in COMMANDS and "sample cgan --by-label --cols 8" in COMMANDS
    assert len(COMMANDS) >= 10
    assert len(table_synopses(README.read_text(encoding="utf-8"))) >= 15
    assert any("open_run" in b for b in python_blocks(README.read_text(encoding="utf-8")))


@pytest.fixture
def world(tmp_path) -> dict[str, Path]:
    """One home, data directory, runs directory and working directory for all the commands."""
    home = tmp_path / "home"
    data = make_mnist_dir(home / "mnist")
    make_shapes(home / "photos", per_class=12)
    work = tmp_path / "work"
    work.mkdir()
    (work / "specs").symlink_to(ROOT / "specs")
    return {"home": home, "data": data, "runs": tmp_path / "runs", "work": work}


def mapped(command: str, world: dict[str, Path]) -> list[str]:
    words = [os.path.expanduser(w) if w.startswith("~") else w for w in shlex.split(command)]
    if words[0] == "train" and "--resume" not in words:
        spec = next(w for w in words[1:] if w.endswith((".yaml", ".yml")))
        text = (ROOT / spec).read_text()
        toy = any(k in text for k in ("toy-gaussian1d", "toy-ring2d"))
        words += TINY["toy" if toy else "images" if "dataset: images" in text else "image"]
    return words


@pytest.mark.slow
def test_readme_commands_run_as_written(world, monkeypatch):
    """Every command of the README's code blocks, in order, in one world (later commands use
    the runs earlier ones made: one test, so no scheduler can split or reorder them)."""
    monkeypatch.setenv("HOME", str(world["home"]))
    monkeypatch.setenv("ADVGRAPH_DATA", str(world["data"]))
    monkeypatch.setenv("ADVGRAPH_RUNS", str(world["runs"]))
    monkeypatch.chdir(world["work"])
    sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available

    no_host = available()
    ran = []
    for command in COMMANDS:
        if no_host is not None and ("cupy" in command.split() or command.split()[0] == "parity"):
            continue  # the cupy host executor cannot run here (test_cupy_cli says why)
        words = mapped(command, world)
        r = cli(*words)
        assert r.exit_code == 0, f"advgraph {shlex.join(words)}\n{r.output}"
        ran.append(command)
    assert "sample cgan --label 3 --rows 2" in ran and len(ran) >= 10


def _help(command: str) -> str:
    r = cli(*command.split(), "--help")
    assert r.exit_code == 0, f"advgraph {command} --help: {r.output}"
    return r.stdout


@pytest.mark.parametrize("synopsis", table_synopses(README.read_text(encoding="utf-8")))
def test_commands_table_names_real_commands_and_options(synopsis):
    words = synopsis.replace("\\|", "|").split()
    at = words.index("advgraph")
    first = words[at + 1] if at + 1 < len(words) else ""
    commands = [""] if first.startswith("-") or first.startswith("[") else first.split("|")
    if commands == ["data"]:  # a command group: `advgraph data inspect|prepare …`
        commands = ["data " + sub for sub in words[at + 2].split("|")]
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", synopsis))
    for command in commands:
        text = _help(command)
        for opt in options:
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text), \
                f"`{synopsis}`: advgraph {command} has no {opt}"


def test_readme_python_api_runs_as_written(tmp_path, monkeypatch):
    r = cli("train", ROOT / "specs" / "ring2d.yaml", "--name", "ring",
            "--set", "training.stop.steps=40", "--set", "training.checkpoint={steps: 20}",
            *TINY["toy"][2:])
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path)  # the runs directory is $ADVGRAPH_RUNS (conftest), not ./runs
    namespace: dict = {}
    for block in python_blocks(README.read_text(encoding="utf-8")):
        exec(compile(block, "README.md (Python API)", "exec"), namespace)
    run, out = namespace["run"], namespace["out"]  # what its comments claim
    np.testing.assert_array_equal(out.detach().numpy(), run.generate(16, seed=0))
    assert namespace["old"].step == run.checkpoints[0] < run.step
