"""The intermediate graph. Imports neither torch, cupy, the spec layer nor the op registry (so
no pydantic): what needs an op's semantics (shapes, FLOPs) is in advgraph/ops."""

from .data import DataInfo
from .graph import Graph, Init, Node, Prior, Program, Tensor
from .ops import Op

__all__ = ["DataInfo", "Graph", "Init", "Node", "Op", "Prior", "Program", "Tensor"]
