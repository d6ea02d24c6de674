"""The intermediate representation's types: the op names (`Op`), graphs of nodes with static
shapes and the rules they keep (`Graph`, `Node`, `Tensor`, `Init`), the Program a backend
builds a trainer from, and what the compiler knows of the data (`DataInfo`).

What each op means is the op registry's (advgraph/ops), which sits above this package: the IR
imports neither it, nor the spec layer (pydantic), nor torch or cupy.
"""

from .data import DataInfo
from .graph import Graph, Init, Node, Prior, Program, Tensor
from .objective import Ema, Objective, Penalty, SpectralWeight
from .ops import Op

__all__ = ["DataInfo", "Ema", "Graph", "Init", "Node", "Objective", "Op", "Penalty", "Prior",
           "Program", "SpectralWeight", "Tensor"]
