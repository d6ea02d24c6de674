"""The intermediate graph. Imports neither torch, cupy, nor the spec layer."""

from .data import DataInfo
from .graph import Graph, Init, Node, Prior, Program, Tensor
from .ops import Op

__all__ = ["DataInfo", "Graph", "Init", "Node", "Op", "Prior", "Program", "Tensor"]
