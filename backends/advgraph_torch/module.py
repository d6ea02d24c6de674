"""A trained graph as a `torch.nn.Module`, for use outside advgraph (`Run.generator()`, export).

Inference only: dropout is off and batchnorm uses its running statistics, as in `sample`. The
forward is the torch backend's own lowering (lower.LOWERINGS), so it computes exactly what
`sample` computes on torch. Parameters keep the IR's names, nested by their dots: G's
`G.h0.weight` is the module's `h0.weight`, a graph block's `G.enc.l0.weight` is `enc.l0.weight`.
"""

from __future__ import annotations

import numpy as np
import torch

from advgraph.ir import Graph

from .lower import Ctx, Net


def _owner(root: torch.nn.Module, path: list[str]) -> torch.nn.Module:
    mod = root
    for part in path:
        if part not in mod._modules:
            mod.add_module(part, torch.nn.Module())
        mod = mod._modules[part]  # type: ignore[assignment]
    return mod


class GraphModule(torch.nn.Module):
    """forward(z) → G(z); a conditional G takes forward(z, y) with y the class labels (int64
    (N,)) or their one-hot rows (float (N, classes))."""

    def __init__(self, graph: Graph, tensors: dict[str, np.ndarray], classes: int | None = None):
        super().__init__()
        self.classes = classes
        params: dict[str, torch.Tensor] = {}
        for t in graph.tensors():
            *path, local = t.name.split(".")[1:]  # drop the graph's own name ("G")
            value = torch.as_tensor(np.asarray(tensors[t.name], dtype=np.float32)).clone()
            owner = _owner(self, path)
            if t.trainable:
                owner.register_parameter(local, torch.nn.Parameter(value, requires_grad=False))
            else:
                owner.register_buffer(local, value)
            params[t.name] = getattr(owner, local)
        self._net = Net(graph, params)
        self._ctx = Ctx(False, False, None)

    def _apply(self, fn, recurse=True):  # .to(device) etc.: keep the lowering's table in step
        out = super()._apply(fn, recurse)
        for name in self._net.params:
            *path, local = name.split(".")[1:]
            self._net.params[name] = getattr(_owner(self, path), local)
        return out

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None and self.classes is not None and not torch.is_floating_point(y):
            y = torch.nn.functional.one_hot(y.long(), self.classes).to(z.dtype)
        return self._net(z, self._ctx, y=y)
