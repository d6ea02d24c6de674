"""Compile a loaded spec against its own data, as the CLI does."""

from __future__ import annotations

from advgraph.compile import compile_spec
from advgraph.data import data_info
from advgraph.ir import Program
from advgraph.spec.load import LoadedSpec


def compile_loaded(loaded: LoadedSpec) -> Program:
    return compile_spec(loaded, data_info(loaded))
