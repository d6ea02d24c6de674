"""The import graph points down: every module of advgraph/ and backends/ sits in one layer of
the table below (CONTRIBUTING.md explains it) and imports only from its own layer or below,
counting imports inside functions and under TYPE_CHECKING; no two modules import each other,
directly or round a cycle (a package's __init__ importing its own modules aside); and the
packages that sit side by side import neither the other. A new module fails here until it has
a place in the table."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# bottom → top; a module belongs to the entry with its longest matching prefix
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("advgraph.errors", "advgraph.names", "advgraph.atomic", "advgraph.jsontext",
                    "advgraph.cache", "advgraph.version", "advgraph.memory")),
    ("ir", ("advgraph.ir",)),
    ("spec and ops", ("advgraph.fields", "advgraph.spec", "advgraph.ops")),
    ("data, compile and the tools over graphs and arrays",
     ("advgraph.data", "advgraph.compile", "advgraph.params", "advgraph.reference",
      "advgraph.sampling", "advgraph.figures", "advgraph.backend_protocol",
      "advgraph.distributed", "advgraph.parzen", "advgraph.nearest", "advgraph.objective")),
    ("backends", ("advgraph_torch", "advgraph_cupy")),
    ("session", ("advgraph.run",)),
    ("train and evaluate", ("advgraph.train", "advgraph.evaluate")),
    ("tools over a run", ("advgraph.export", "advgraph.api", "advgraph.parity", "advgraph.sweep",
                          "advgraph")),
    ("cli", ("advgraph.cli", "advgraph.__main__")),
]
# in one layer, but neither may import the other
SIDE_BY_SIDE = [("advgraph.train", "advgraph.evaluate"), ("advgraph_torch", "advgraph_cupy")]


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for base in (root, root / "backends"):
        for pkg in ("advgraph", "advgraph_torch", "advgraph_cupy"):
            for path in sorted((base / pkg).rglob("*.py")):
                parts = path.relative_to(base).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[tuple[str, int]]:
    """(module imported, line) for every import statement of the module, wherever it is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add((target, node.lineno))
    return out


def layer_of(name: str) -> int:
    best, level = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            # the package's own __init__ ("advgraph") is a layer of its own, not a prefix: a new
            # module must be given its layer
            prefix = p != "advgraph" and name.startswith(p + ".")
            if (name == p or prefix) and len(p) > best:
                best, level = len(p), i
    if level is None:
        raise KeyError(name)
    return level


def component(name: str) -> str | None:
    return next((c for pair in SIDE_BY_SIDE for c in pair
                 if name == c or name.startswith(c + ".")), None)


def graph(root: Path = ROOT) -> dict[str, set[tuple[str, int]]]:
    known = modules(root)
    return {name: imports(name, path, known) for name, path in known.items()}


def upward_arrows(edges: dict[str, set[tuple[str, int]]]) -> list[str]:
    bad = []
    for a, targets in sorted(edges.items()):
        for b, line in sorted(targets):
            la, lb = layer_of(a), layer_of(b)
            if lb > la:
                bad.append(f"{a}:{line} imports {b}: layer {LAYERS[lb][0]!r} is above "
                           f"{LAYERS[la][0]!r}")
            elif lb == la and {component(a), component(b)} in map(set, SIDE_BY_SIDE):
                bad.append(f"{a}:{line} imports {b}: they sit side by side")
    return bad


def cycles(edges: dict[str, set[tuple[str, int]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), without the edges
    from a package's __init__ to its own modules."""
    succ = {a: sorted({b for b, _ in ts if not b.startswith(a + ".")}) for a, ts in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def edges():
    return graph()


def test_every_module_has_a_layer(edges):
    missing = []
    for name in edges:
        try:
            layer_of(name)
        except KeyError:
            missing.append(name)
    assert not missing, f"give these a layer in LAYERS (and CONTRIBUTING.md): {missing}"
    for new in ("advgraph.brandnew", "advgraph.newpkg.mod"):  # the package is no catch-all
        with pytest.raises(KeyError):
            layer_of(new)


def test_no_import_points_up(edges):
    bad = upward_arrows(edges)
    assert not bad, "imports that point up:\n" + "\n".join(bad)


def test_no_import_cycle(edges):
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path):
    """The checks themselves: the errors (the foundation) importing the training loop, which
    imports them, lazily, is both."""
    for path in modules().values():
        dest = tmp_path / path.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(path.read_text())
    errors_py = tmp_path / "advgraph" / "errors.py"
    errors_py.write_text(errors_py.read_text() + "\n\ndef _up():\n    from .train import loop\n")
    planted = graph(tmp_path)
    assert any(a.startswith("advgraph.errors:") and "advgraph.train.loop" in a
               for a in upward_arrows(planted))
    assert any("advgraph.errors" in c and "advgraph.train.loop" in c for c in cycles(planted))


def test_the_ir_loads_no_pydantic():
    """ir/__init__ promises a graph without the spec layer: importing it loads no pydantic."""
    code = "import sys, advgraph.ir; sys.exit('pydantic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
