"""The `advgraph` command line. Thin: parse, call the library, print.

AdvGraphError → a message on stderr and its exit code (2 for spec/usage problems, 1 otherwise),
never a traceback. `--help` and `check` import neither torch nor cupy (backends load lazily).
One module per group of commands: check, train, generate (sample, interpolate, eval, plot),
export, runs (parity, runs, backends); common holds what they share, completion what Tab
offers.
"""

from __future__ import annotations

import sys

import typer

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
