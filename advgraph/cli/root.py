"""The `advgraph` command: its own options, and every command in the order --help lists them
(the command modules define plain functions; they are registered here, and only here)."""

from __future__ import annotations

import re
import sys

import typer
import typer.core

from . import backends, check, data, evaluate, export, generate, rundirs, sweep, train
from .common import console, err

app = typer.Typer(
    help="Generative adversarial nets (Goodfellow et al., 2014) declared in YAML.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (completion.py)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# (name, function), in --help's order
COMMANDS = (
    ("check", check.check), ("train", train.train), ("sweep", sweep.sweep),
    ("sample", generate.sample), ("interpolate", generate.interpolate),
    ("eval", evaluate.eval_), ("plot", generate.plot), ("export", export.export),
    ("parity", backends.parity), ("runs", rundirs.runs), ("backends", backends.backends),
    ("rm", rundirs.rm),
)


class _Command(typer.core.TyperCommand):
    """Usage lines in the usual form, `advgraph sample [OPTIONS] RUN`: typer writes a required
    argument in braces (`{RUN}`), which reads like a set of choices."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [_unbraced(p) for p in super().collect_usage_pieces(ctx)]


def _unbraced(piece: str) -> str:
    m = re.fullmatch(r"\{(.+)\}(\.\.\.)?", piece)
    if m is None:
        return piece
    return m.group(1) if m.group(1).endswith("...") else m.group(1) + (m.group(2) or "")


for _name, _fn in COMMANDS:
    app.command(_name, cls=_Command)(_fn)

# `advgraph data inspect|prepare`: a folder of images looked at, and packed
DATA_COMMANDS = (("inspect", data.inspect), ("prepare", data.prepare))
for _name, _fn in DATA_COMMANDS:
    data.app.command(_name, cls=_Command)(_fn)
app.add_typer(data.app, name="data")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"advgraph {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print advgraph's version and exit.")) -> None:
    """Generative adversarial nets (Goodfellow et al., 2014) declared in YAML."""


def main() -> None:
    try:
        # One name whatever the launcher (`python -m advgraph` too): completion scripts call
        # back through $_ADVGRAPH_COMPLETE.
        app(prog_name="advgraph")
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
