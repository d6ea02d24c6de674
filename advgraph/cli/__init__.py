"""The `advgraph` command line. Thin: parse, call the library, print.

AdvGraphError → a message on stderr and its exit code (2 for spec/usage problems, 1 otherwise),
never a traceback. `--help` and `check` import neither torch nor cupy (backends load lazily).
One module per group of commands: check, train, generate (sample, interpolate, eval, plot),
export, runs (parity, runs, backends); common holds what they share, completion what Tab
offers.
"""

from __future__ import annotations

import re
import sys

import typer
import typer.core

from .common import console, err

app = typer.Typer(
    help="Generative adversarial nets (Goodfellow et al., 2014) declared in YAML.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (completion.py)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


# The commands register themselves on `app`, in the order --help lists them.
from . import check, train, generate, export, runs  # noqa: E402,F401


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


for _info in app.registered_commands:  # typer's default class, kept usage-line compatible
    if _info.cls in (None, typer.core.TyperCommand):
        _info.cls = _Command
