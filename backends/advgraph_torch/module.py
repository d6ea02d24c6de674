"""A trained graph as a `torch.nn.Module`, for use outside advgraph (`Run.generator()`, export).

Inference only: dropout is off and batchnorm uses its running statistics, as in `sample`. The
forward is the torch backend's own lowering (lower.LOWERINGS), so it computes exactly what
`sample` computes on torch. Parameters keep the IR's names, nested by their dots: G's
`G.h0.weight` is the module's `h0.weight`, a graph block's `G.enc.l0.weight` is `enc.l0.weight`
(a layer named like an nn.Module attribute, e.g. `training`, becomes `training_`).

Weights are in the checkpoint's layouts, or with `torch_layout` in torch's usual ones: dense and
maxout weights (in, out) become nn.Linear's (out, in) (conv weights already are nn.Conv2d's and
nn.ConvTranspose2d's). Either way the outputs are the same, bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from advgraph.ir import Graph
from advgraph.ops import OPS

from .lower import Ctx, Net


def _child(mod: torch.nn.Module, part: str, taken: dict) -> torch.nn.Module:
    """The container for spec name `part` under `mod`: a name nn.Module already uses
    ("training", "forward", …) gets trailing underscores until it is free."""
    key = (id(mod), part)
    if key not in taken:
        name = part
        while hasattr(mod, name):
            name += "_"
        mod.add_module(name, torch.nn.Module())
        taken[key] = mod._modules[name]
    return taken[key]


class GraphModule(torch.nn.Module):
    """forward(z) → G(z); a conditional G takes forward(z, y) with y the class labels (int64
    (N,)) or their one-hot rows (float (N, classes))."""

    def __init__(self, graph: Graph, tensors: dict[str, np.ndarray], classes: int | None = None,
                 torch_layout: bool = False):
        super().__init__()
        self.classes = classes
        params: dict[str, torch.Tensor] = {}
        self._where: dict[str, tuple[torch.nn.Module, str]] = {}
        taken: dict = {}
        linear = {n.tensors["weight"].name for n in graph.nodes
                  if torch_layout and OPS[n.op].gemm}
        for t in graph.tensors():
            *path, local = t.name.split(".")[1:]  # drop the graph's own name ("G")
            value = torch.as_tensor(np.asarray(tensors[t.name], dtype=np.float32)).clone()
            if t.name in linear:  # (out, in) as a view of the (in, out) memory: see lower._gemm
                value = value.t()
            owner = self
            for part in path:
                owner = _child(owner, part, taken)
            self._where[t.name] = (owner, local)
            if t.trainable:
                owner.register_parameter(local, torch.nn.Parameter(value, requires_grad=False))
            else:
                owner.register_buffer(local, value)
            params[t.name] = getattr(owner, local)  # weight, bias, running_*: never a clash
        self._net = Net(graph, params)
        self._ctx = Ctx(False, False, None, linear_layout=torch_layout)

    def _as_tensor(self, x):
        """NumPy input (`run.sample_noise`, labels) as a tensor on this module's device, floats
        in its dtype; a tensor passes unchanged (tracing and export see only tensors)."""
        if not isinstance(x, np.ndarray):
            return x
        ref = next(iter(self._net.params.values()))
        t = torch.as_tensor(x, device=ref.device)
        return t.to(ref.dtype) if t.is_floating_point() else t

    def tensor_names(self) -> dict[str, str]:
        """IR name ("G.h0.weight") → this module's state_dict key ("h0.weight")."""
        key = {id(v): k for k, v in self.state_dict(keep_vars=True).items()}
        return {name: key[id(t)] for name, t in self._net.params.items()}

    def _apply(self, fn, recurse=True):  # .to(device) etc.: keep the lowering's table in step
        out = super()._apply(fn, recurse)
        for name, (owner, local) in self._where.items():
            self._net.params[name] = getattr(owner, local)
        return out

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z, y = self._as_tensor(z), (None if y is None else self._as_tensor(y))
        if y is not None and self.classes is None:
            raise ValueError("this G is not conditional: call it without labels")
        if y is not None and not torch.is_floating_point(y):
            y = torch.nn.functional.one_hot(y.long(), self.classes).to(z.dtype)
        return self._net(z, self._ctx, y=y)
