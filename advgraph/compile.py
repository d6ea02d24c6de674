"""GanSpec → Program: lower each network's layer list to a typed graph, infer shapes, verify.

Every problem found here is located in the spec like a validation error (file:line:col and the
dotted path), and all of them are reported at once.
"""

from __future__ import annotations

from difflib import get_close_matches
from math import prod
from typing import Any

from .errors import Problem, SpecError
from .ir import DataInfo, Graph, Node, Op, Prior, Program, Tensor
from .ops import ARITY, OPS, ShapeError, fmt_shape, of_layer, too_small_batch
from .fields import MAX_SIZE
from .objective import d_ending_problem
from .objective import resolve as resolve_objective
from .spec.gan import GanSpec, UniformPrior
from .spec.layers import Network
from .spec.load import LoadedSpec


# The layers whose output is a probability of the logit they read (`OpDef.probability`): D ends
# in one, and a bias of "marginals" is the logit of the data's mean only right before one.
_PROBABILITY = " or ".join(d.op.value for d in OPS.values() if d.probability)


class _Builder:
    """Lowers one network (layer chain or graph of blocks) to a Graph, collecting problems."""

    def __init__(self, net_name: str, key: str, inputs: dict[str, tuple[int, ...]],
                 loaded: LoadedSpec, problems: list[Problem]):
        self.net, self.loaded, self.problems = net_name, loaded, problems
        self.nodes: list[Node] = []
        self.shapes: dict[str, tuple[int, ...]] = {}  # node name → shape
        self.names: dict[str, str] = {}  # spec-level name (input or block) → node name
        for source, shape in inputs.items():
            name = f"{net_name}.input" if source != "y" else f"{net_name}.label"
            self.add(Node(name, Op.INPUT, (), shape, {"source": source}, origin=(key,)))
            self.names[source] = name
        self.ok = True

    def add(self, node: Node) -> None:
        self.nodes.append(node)
        self.shapes[node.name] = node.shape

    def problem(self, path: tuple, msg: str) -> None:
        self.problems.append(self.loaded.problem(path, msg))
        self.ok = False

    @staticmethod
    def _too_big(out: tuple[int, ...], params: dict[str, tuple[int, ...]]) -> str | None:
        """A tensor larger than 32-bit indexing allows (and than any machine's memory for a
        batch of it): refused here, so that shape products stay far from overflowing int64."""
        if prod(out) > MAX_SIZE:
            return (f"output {fmt_shape(out)} has {prod(out):,} values per example, more than "
                    f"{MAX_SIZE:,} (2^31 - 1)")
        for t, sh in params.items():
            if prod(sh) > MAX_SIZE:
                return (f"{t} {fmt_shape(sh)} has {prod(sh):,} values, more than {MAX_SIZE:,} "
                        "(2^31 - 1)")
        return None

    def block(self, prefix: str, sources: list[str], layers: list[Any], path: tuple,
              inputs_path: tuple) -> str | None:
        """Nodes for one block; returns its output node's name (None after a problem)."""
        node_names = self._sources(sources, inputs_path)
        if node_names is None:
            return None
        cur = self._joined(prefix, node_names, inputs_path)
        if cur is None:
            return None
        used: dict[str, int] = {}
        for i, layer in enumerate(layers):
            lpath = path + (i,)
            local = layer.name if layer.name is not None else f"l{i}"
            if local in used:
                where = lpath + ("name",) if layer.name is not None else lpath
                self.problem(where, f"layer name {local!r} is already used by "
                                    f"layers[{used[local]}]")
                continue
            used[local] = i
            cur = self._layer(prefix, local, layer, lpath, cur)
            if cur is None:
                return None  # later shapes would only repeat the problem
        return cur

    def _sources(self, sources: list[str], inputs_path: tuple) -> list[str] | None:
        """The nodes a block's `inputs` name (None after a problem)."""
        node_names = []
        for j, src in enumerate(sources):
            if src == "y" and src not in self.names:  # no condition: reported with the spec's
                self.ok = False                      # condition check, once
                return None
            if src not in self.names:
                known = list(self.names)
                near = get_close_matches(src, known, n=1)
                self.problem(inputs_path + ((j,) if len(sources) > 1 else ()),
                             f"unknown input {src!r}" + (f" (did you mean {near[0]!r}?)" if near
                                                         else f"; known here: {', '.join(known)}"))
                return None
            node_names.append(self.names[src])
        return node_names

    def _joined(self, prefix: str, node_names: list[str], inputs_path: tuple) -> str | None:
        """A block's input: its one source, or a concat node of several."""
        if len(node_names) == 1:
            return node_names[0]
        try:
            shape = OPS[Op.CONCAT].infer([self.shapes[n] for n in node_names], {})
        except ShapeError as e:
            self.problem(inputs_path, str(e))
            return None
        if prod(shape) > MAX_SIZE:
            self.problem(inputs_path, f"concatenation {fmt_shape(shape)} has "
                                      f"{prod(shape):,} values per example, more than "
                                      f"{MAX_SIZE:,} (2^31 - 1)")
            return None
        cur = f"{self.net}.{prefix}concat"
        self.add(Node(cur, Op.CONCAT, tuple(node_names), shape, origin=inputs_path))
        return cur

    def _layer(self, prefix: str, local: str, layer: Any, lpath: tuple, cur: str) -> str | None:
        """One layer's node after `cur`; returns the block's output so far: the new node, or
        `cur` when the layer is refused but later ones can still be checked (None when they
        cannot)."""
        shape = self.shapes[cur]
        op = of_layer(layer)
        attrs = op.attrs(layer)
        try:
            out = op.infer(shape, attrs)
        except ShapeError as e:
            self.problem(lpath, str(e))
            return None
        shapes = op.param_shapes(shape, attrs)
        too_big = self._too_big(out, shapes)
        if too_big:
            self.problem(lpath, too_big)
            return None
        name = f"{self.net}.{prefix}{local}"
        if name in self.shapes:
            self.problem(lpath + ("name",), f"layer name {local!r} is reserved here "
                                            f"(node {name} already exists)")
            return cur
        tensors = {t: Tensor(f"{name}.{t}", sh, op.params[t].init(layer, sh),
                             trainable=op.params[t].trainable) for t, sh in shapes.items()}
        self.add(Node(name, op.op, (cur,), out, attrs, tensors, origin=lpath))
        return name


def _lower(net_name: str, key: str, net: Network, inputs: dict[str, tuple[int, ...]],
           loaded: LoadedSpec, problems: list[Problem]) -> Graph | None:
    """`inputs`: the network's input names and shapes, main input first ("z" or "x"), then "y"
    in a conditional GAN."""
    b = _Builder(net_name, key, inputs, loaded, problems)
    if net.layers is not None:
        # A chain; in a conditional GAN the label is concatenated to the input.
        out = b.block("", list(inputs), net.layers, (key, "layers"), (key,))
        return Graph(net_name, b.nodes, output=out) if out is not None and b.ok else None
    assert net.graph is not None
    out = None
    for i, blk in enumerate(net.graph):
        path = (key, "graph", i)
        if blk.name in b.names:
            what = "an input" if blk.name in inputs else "an earlier block"
            b.problem(path + ("name",), f"block name {blk.name!r} is already {what}'s name")
            return None
        if not blk.layers and len(blk.inputs) < 2:
            b.problem(path, "a block needs layers, or several inputs to concatenate")
            return None
        out = b.block(f"{blk.name}.", blk.inputs, blk.layers, path + ("layers",),
                      path + ("inputs",))
        if out is None:
            return None
        b.names[blk.name] = out
    if not b.ok:
        return None
    # Every input and block must reach the output: an unused one is almost surely a mistake
    # (a condition that silently never enters the network, a branch left dangling).
    used = {i for n in b.nodes for i in n.inputs} | {out}
    for j, blk in enumerate(net.graph):
        if b.names[blk.name] not in used:
            b.problem((key, "graph", j, "name"), f"block {blk.name!r} is not used by the output "
                      f"(the last block, {net.graph[-1].name!r})")
    for source in inputs:
        if b.names[source] not in used:
            what = "the condition y" if source == "y" else f"the input {source}"
            b.problem((key, "graph"), f"{what} never enters {net_name}: name it in some "
                                      "block's inputs")
    return Graph(net_name, b.nodes, output=out) if b.ok else None


def _check_input(decl: Any, expected: tuple[int, ...], what: str, key: str,
                 loaded: LoadedSpec, problems: list[Problem]) -> None:
    if decl is not None and tuple(decl.shape) != expected:
        problems.append(loaded.problem(
            (key, "input", "shape"),
            f"declared {fmt_shape(tuple(decl.shape))} but {what} is {fmt_shape(expected)}"))


def _check_d_ending(spec: GanSpec, D: Graph, loaded: LoadedSpec,
                    problems: list[Problem]) -> None:
    """D ends as its loss reads it (a sigmoid, or a raw score) in one value per example; sets
    D.logits: the final sigmoid's input, or the raw score itself."""
    where, layers = spec.discriminator.last_layers()
    final = layers[-1] if layers else None
    at = ("discriminator", *where, len(layers) - 1) if layers else ("discriminator", "graph")
    probability = final is not None and of_layer(final).probability
    why = d_ending_problem(spec.training.loss, probability)
    if why is not None:
        ending = repr(final.type) if final is not None else "a concat"
        problems.append(loaded.problem(at, f"D ends in {ending}: {why}"))
    elif D.out_shape != (1,):
        problems.append(loaded.problem(
            at, f"D must output one {'probability' if probability else 'score'} per "
                f"example, got {fmt_shape(D.out_shape)}"))
    else:
        D.logits = D.node(D.output).inputs[0] if probability else D.output


def compile_spec(loaded: LoadedSpec, data: DataInfo) -> Program:
    """Lower a validated spec to a Program for data of `data.shape` and `data.classes`
    (advgraph.data.data_info(loaded) gives the spec's own data)."""
    spec: GanSpec = loaded.spec
    problems: list[Problem] = []
    data_shape = data.shape
    z_shape = (spec.prior.dim,)
    _check_input(spec.generator.input, z_shape, "the prior's dimension", "generator", loaded,
                 problems)
    _check_input(spec.discriminator.input, data_shape, "the data's shape", "discriminator",
                 loaded, problems)
    classes = _check_condition(spec, data.classes, loaded, problems)
    label = {"y": (classes,)} if classes is not None else {}
    G = _lower("G", "generator", spec.generator, {"z": z_shape, **label}, loaded, problems)
    D = _lower("D", "discriminator", spec.discriminator, {"x": data_shape, **label}, loaded,
               problems)

    if G is not None:
        where, layers = spec.generator.last_layers()
        if G.out_shape != data_shape:
            problems.append(loaded.problem(
                ("generator", *where, len(layers) - 1),
                f"G's output {fmt_shape(G.out_shape)} does not match the data's shape "
                f"{fmt_shape(data_shape)}"))
        _check_marginals(spec, loaded, problems)
    if D is not None:
        _check_d_ending(spec, D, loaded, problems)
    # Marginal biases in D make no sense (there is no target to take marginals of).
    for path, layer in _all_layers(spec.discriminator, "discriminator"):
        if getattr(layer, "bias", None) == "marginals":
            problems.append(loaded.problem(
                path + ("bias",), "bias 'marginals' is only meaningful for G's output layer"))

    objective = None
    if G is not None and D is not None:
        _check_batch(G, D, spec.training.batch_size, loaded, problems)
        objective = resolve_objective(spec, G, D, loaded, problems)
    if problems:
        raise SpecError(problems)
    assert G is not None and D is not None
    G.verify(ARITY)
    D.verify(ARITY)
    p = spec.prior
    prior = (Prior.uniform(p.dim, p.low, p.high) if isinstance(p, UniformPrior)
             else Prior.gaussian(p.dim, p.mean, p.std))
    assert objective is not None
    return Program(G=G, D=D, prior=prior, data_shape=data_shape, classes=classes,
                   objective=objective)


def _check_batch(G, D, batch: int, loaded: LoadedSpec, problems: list[Problem]) -> None:
    """A minibatch must give every batch-coupled op (batchnorm) 2 values per channel."""
    small = too_small_batch((G, D), batch)
    if small is not None:
        node, least = small
        problems.append(loaded.problem(
            ("training", "batch_size"),
            f"{node.name} ({node.op.value}) takes its statistics over each minibatch: "
            f"{batch} example(s) give it fewer than 2 values per channel; use batch_size ≥ "
            f"{least}"))


def _all_layers(net: Network, key: str):
    """(spec path, layer) of every layer of a network, in either form."""
    if net.layers is not None:
        for i, layer in enumerate(net.layers):
            yield (key, "layers", i), layer
    for j, blk in enumerate(net.graph or []):
        for i, layer in enumerate(blk.layers):
            yield (key, "graph", j, "layers", i), layer


def _check_condition(spec: GanSpec, have: int | None, loaded: LoadedSpec,
                     problems: list[Problem]) -> int | None:
    """The number of classes of a conditional GAN (None without a condition), against the
    `have` classes of the data's labels (DataInfo.classes)."""
    cond = spec.condition
    if cond is None:
        for net, key in ((spec.generator, "generator"), (spec.discriminator, "discriminator")):
            for j, blk in enumerate(net.graph or []):
                if "y" in blk.inputs:
                    problems.append(loaded.problem(
                        (key, "graph", j, "inputs"),
                        "y is the condition, and this spec has none: add "
                        "'condition: {type: label, classes: N}'"))
        return None
    if have is None:
        hint = ("; name the labels array with data.labels" if spec.data.dataset == "npz"
                else "")
        problems.append(loaded.problem(("condition",), f"dataset {spec.data.dataset!r} has no "
                                                       f"labels to condition on{hint}"))
    elif have and have != cond.classes:
        problems.append(loaded.problem(("condition", "classes"),
                                       f"{spec.data.dataset} has {have} classes, not "
                                       f"{cond.classes}"))
    return cond.classes


def _check_marginals(spec: GanSpec, loaded: LoadedSpec, problems: list[Problem]) -> None:
    where, last = spec.generator.last_layers()
    for path, layer in _all_layers(spec.generator, "generator"):
        if getattr(layer, "bias", None) != "marginals":
            continue
        is_output = (path == ("generator", *where, len(last) - 2)
                     and of_layer(last[-1]).probability)
        if not is_output:
            problems.append(loaded.problem(
                path + ("bias",),
                "bias 'marginals' (logit of each pixel's mean) needs this to be G's last "
                f"dense layer, followed only by the final {_PROBABILITY}"))
