"""A network in the spec: a layer list (a chain) or a graph of named blocks.

Each layer is a tagged union on `type` over the op families' layer models (advgraph/ops/*):
adding an op there adds its layer here.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, field_validator, model_validator

from advgraph.ops import LAYER_MODELS

from ..fields import Name, Size, Strict

Layer = Annotated[Union[LAYER_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]


class InputSpec(Strict):
    """Optional explicit input shape (without the batch axis); checked against the prior/data."""

    shape: Annotated[list[Size], Field(min_length=1, max_length=4)]


class Block(Strict):
    """One node of the graph form: its `inputs` (a network input or earlier blocks, by name;
    several are concatenated, see the CONCAT op) run through `layers`."""

    name: Name
    inputs: Annotated[list[Name], Field(min_length=1, max_length=16)]
    layers: list[Layer] = Field(default_factory=list)

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v


class Network(Strict):
    """A layer list (a chain from the network's input) or, for branches, a `graph` of named
    blocks whose last block is the output. The inputs are named z (G's noise), x (D's data)
    and, in a conditional GAN, y (the one-hot label)."""

    input: InputSpec | None = None
    layers: Annotated[list[Layer], Field(min_length=1)] | None = None
    graph: Annotated[list[Block], Field(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> "Network":
        if (self.layers is None) == (self.graph is None):
            raise ValueError("give exactly one of 'layers' (a chain) or 'graph' (named blocks)")
        return self

    def last_layers(self) -> tuple[tuple, list]:
        """(spec path of the output's layer list, that list)."""
        if self.graph is not None:
            return ("graph", len(self.graph) - 1, "layers"), self.graph[-1].layers
        return ("layers",), self.layers or []

