"""GanSpec → Program: lower each network's layer list to a typed graph, infer shapes, verify.

Every problem found here is located in the spec like a validation error (file:line:col and the
dotted path), and all of them are reported at once.
"""

from __future__ import annotations

from typing import Any

from .errors import Problem, SpecError
from .ir import Graph, Init, Node, Op, Prior, Program, Tensor
from .ir.shapes import ShapeError, fmt_shape, infer, param_shapes
from .spec import layers as L
from .spec.gan import GanSpec, UniformPrior
from .spec.load import LoadedSpec

_OP_OF = {
    L.Dense: Op.DENSE, L.Maxout: Op.MAXOUT, L.Relu: Op.RELU, L.LeakyRelu: Op.LEAKY_RELU,
    L.Tanh: Op.TANH, L.Sigmoid: Op.SIGMOID, L.Linear: Op.LINEAR, L.Dropout: Op.DROPOUT,
    L.Reshape: Op.RESHAPE, L.BatchNorm: Op.BATCHNORM, L.Conv2d: Op.CONV2D,
    L.ConvTranspose2d: Op.CONV_T2D, L.MaxoutConv: Op.MAXOUT_CONV, L.MaxPool: Op.MAX_POOL,
    L.Flatten: Op.FLATTEN,
}


def _attrs(layer: Any) -> dict[str, Any]:
    if isinstance(layer, L.Dense):
        return {"units": layer.units}
    if isinstance(layer, L.Maxout):
        return {"units": layer.units, "pieces": layer.pieces}
    if isinstance(layer, L.LeakyRelu):
        return {"slope": layer.slope}
    if isinstance(layer, L.Dropout):
        return {"keep": layer.keep, "scale": layer.effective_scale}
    if isinstance(layer, L.Reshape):
        return {"shape": tuple(layer.shape)}
    if isinstance(layer, L.BatchNorm):
        return {"eps": layer.eps, "momentum": layer.momentum}
    if isinstance(layer, L._Conv):
        a = {"channels": layer.channels, "kernel": layer.kernel, "stride": layer.stride,
             "pad": layer.pad}
        if isinstance(layer, L.MaxoutConv):
            a["pieces"] = layer.pieces
        if isinstance(layer, L.ConvTranspose2d):
            a["output_pad"] = layer.output_pad
        return a
    if isinstance(layer, L.MaxPool):
        return {"kernel": layer.kernel, "stride": layer.stride or layer.kernel, "pad": layer.pad}
    return {}


def _init_of(layer: Any, local: str) -> Init:
    if local == "weight" and isinstance(layer, (L.Dense, L.Maxout, L._Conv)):
        init = layer.init
        if isinstance(init, L.UniformInit):
            return Init("uniform", {"range": init.range})
        if isinstance(init, L.NormalInit):
            return Init("normal", {"std": init.std})
        return Init("xavier", {"gain": init.gain})
    if local == "bias" and isinstance(layer, (L.Dense, L.Maxout, L._Conv)):
        if layer.bias == "marginals":
            return Init("marginals")
        return Init("const", {"value": float(layer.bias)})
    if local in ("weight", "running_var"):  # batchnorm
        return Init("const", {"value": 1.0})
    return Init("const", {"value": 0.0})


def _lower(net_name: str, key: str, layers: list[Any], in_shape: tuple[int, ...],
           loaded: LoadedSpec, problems: list[Problem]) -> Graph | None:
    nodes = [Node(f"{net_name}.input", Op.INPUT, (), in_shape, origin=(key,))]
    used: dict[str, int] = {}
    shape = in_shape
    ok = True
    for i, layer in enumerate(layers):
        path = (key, "layers", i)
        local = layer.name if layer.name is not None else f"l{i}"
        if local in used:
            where = path + ("name",) if layer.name is not None else path
            problems.append(loaded.problem(
                where, f"layer name {local!r} is already used by layers[{used[local]}]"))
            ok = False
            continue
        used[local] = i
        op = _OP_OF[type(layer)]
        attrs = _attrs(layer)
        try:
            out = infer(op, shape, attrs)
        except ShapeError as e:
            problems.append(loaded.problem(path, str(e)))
            return None  # later shapes would only repeat the problem
        name = f"{net_name}.{local}"
        tensors = {
            t: Tensor(f"{name}.{t}", s, _init_of(layer, t), trainable=t in ("weight", "bias"))
            for t, s in param_shapes(op, shape, attrs).items()
        }
        nodes.append(Node(name, op, (nodes[-1].name,), out, attrs, tensors, origin=path))
        shape = out
    if not ok:
        return None
    return Graph(net_name, nodes, output=nodes[-1].name)


def _check_input(decl: Any, expected: tuple[int, ...], what: str, key: str,
                 loaded: LoadedSpec, problems: list[Problem]) -> None:
    if decl is not None and tuple(decl.shape) != expected:
        problems.append(loaded.problem(
            (key, "input", "shape"),
            f"declared {fmt_shape(tuple(decl.shape))} but {what} is {fmt_shape(expected)}"))


def compile_spec(loaded: LoadedSpec, data_shape: tuple[int, ...] | None = None) -> Program:
    """Lower a validated spec to a Program. `data_shape` defaults to the dataset's own."""
    spec: GanSpec = loaded.spec
    problems: list[Problem] = []
    if data_shape is None:
        from .data.registry import sample_shape

        data_shape = sample_shape(spec.data, loaded.base_dir, loaded)
    z_shape = (spec.prior.dim,)
    _check_input(spec.generator.input, z_shape, "the prior's dimension", "generator", loaded,
                 problems)
    _check_input(spec.discriminator.input, data_shape, "the data's shape", "discriminator",
                 loaded, problems)
    G = _lower("G", "generator", spec.generator.layers, z_shape, loaded, problems)
    D = _lower("D", "discriminator", spec.discriminator.layers, data_shape, loaded, problems)

    if G is not None:
        last = len(spec.generator.layers) - 1
        if G.out_shape != data_shape:
            problems.append(loaded.problem(
                ("generator", "layers", last),
                f"G's output {fmt_shape(G.out_shape)} does not match the data's shape "
                f"{fmt_shape(data_shape)}"))
        _check_marginals(spec, loaded, problems)
    if D is not None:
        last = len(spec.discriminator.layers) - 1
        final = spec.discriminator.layers[last]
        if not isinstance(final, L.Sigmoid):
            problems.append(loaded.problem(
                ("discriminator", "layers", last),
                f"D must end in a sigmoid (one probability per example), not {final.type!r}"))
        elif D.out_shape != (1,):
            problems.append(loaded.problem(
                ("discriminator", "layers", last),
                f"D must output one probability per example, got {fmt_shape(D.out_shape)}"))
        else:
            D.logits = D.nodes[-2].name
    # Marginal biases in D make no sense (there is no target to take marginals of).
    for i, layer in enumerate(spec.discriminator.layers):
        if getattr(layer, "bias", None) == "marginals":
            problems.append(loaded.problem(
                ("discriminator", "layers", i, "bias"),
                "bias 'marginals' is only meaningful for G's output layer"))

    if problems:
        raise SpecError(problems)
    assert G is not None and D is not None
    G.verify()
    D.verify()
    p = spec.prior
    prior = (Prior("uniform", p.dim, p.low, p.high) if isinstance(p, UniformPrior)
             else Prior("gaussian", p.dim, p.mean, p.std))
    return Program(G=G, D=D, prior=prior, g_loss=spec.training.g_loss, data_shape=data_shape)


def _check_marginals(spec: GanSpec, loaded: LoadedSpec, problems: list[Problem]) -> None:
    layers = spec.generator.layers
    for i, layer in enumerate(layers):
        if getattr(layer, "bias", None) != "marginals":
            continue
        is_output = (i == len(layers) - 2 and isinstance(layers[-1], L.Sigmoid))
        if not is_output:
            problems.append(loaded.problem(
                ("generator", "layers", i, "bias"),
                "bias 'marginals' (logit of each pixel's mean) needs this to be G's last "
                "dense layer, followed only by the final sigmoid"))
