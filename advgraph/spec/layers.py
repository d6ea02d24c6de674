"""One pydantic model per layer kind; a network is an ordered list, a tagged union on `type`."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]

# ---- numeric ranges -------------------------------------------------------------------------
# Every number of a spec gets the range its use needs, so that a value that validates can
# neither crash nor silently misbehave later. Floats end up in float32 arithmetic (noise,
# weights, data, optimiser constants): magnitudes are kept within ±1e30, so that sums and
# differences (high − low of a prior, mean + 6·std of a sample) stay finite in float32 (max
# ≈ 3.4e38), and positive values at least 1e-30, so that none rounds to 0 (float32's smallest
# normal number is ≈ 1.2e-38). Sizes are at most 2^31 − 1 (the kernels index with 32 bits; the
# compiler also bounds each tensor's size, so that shape products cannot overflow and the
# memory check sees every net); seeds are 0 … 2^63 − 1 (NumPy's SeedSequence and the backends'
# generators take unsigned 64-bit seeds).

F32_LIMIT = 1e30
F32_TINY = 1e-30
MAX_SIZE = 2**31 - 1
MAX_SEED = 2**63 - 1
MAX_COUNT = 2**53 - 1  # steps, epochs, intervals: exact in float64 and JSON


def _within_f32(x: float) -> float:
    if not -F32_LIMIT <= x <= F32_LIMIT:
        raise ValueError(f"{x:g} is out of range: values must lie within ±{F32_LIMIT:g} "
                         "(they are used in float32 arithmetic)")
    return x


def _not_tiny(x: float) -> float:
    if 0 < x < F32_TINY:
        raise ValueError(f"{x:g} is too small: positive values must be at least {F32_TINY:g} "
                         "(smaller ones round to 0 in float32)")
    return x


Real = Annotated[float, AfterValidator(_within_f32)]
PositiveReal = Annotated[float, Field(gt=0), AfterValidator(_within_f32), AfterValidator(_not_tiny)]
NonNegativeReal = Annotated[float, Field(ge=0), AfterValidator(_within_f32),
                            AfterValidator(_not_tiny)]
Size = Annotated[int, Field(gt=0, le=MAX_SIZE)]  # units, channels, dimensions
Count = Annotated[int, Field(gt=0, le=MAX_COUNT)]
NonNegativeCount = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Pieces = Annotated[int, Field(ge=2, le=4096)]


class Strict(BaseModel):
    """Unknown keys are errors (reported with a did-you-mean suggestion by the loader)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ---- weight initialisation -------------------------------------------------------------------


class UniformInit(Strict):
    """U(-range, range), Pylearn2's `irange`."""

    type: Literal["uniform"]
    range: PositiveReal


class NormalInit(Strict):
    """N(0, std²)."""

    type: Literal["normal"]
    std: PositiveReal


class XavierInit(Strict):
    """Glorot & Bengio uniform: U(±gain·√(6 / (fan_in + fan_out)))."""

    type: Literal["xavier"]
    gain: PositiveReal = 1.0


Init = Annotated[Union[UniformInit, NormalInit, XavierInit], Field(discriminator="type")]


def _default_init() -> XavierInit:
    return XavierInit(type="xavier")


# ---- layers ---------------------------------------------------------------------------------


class _Layer(Strict):
    name: Name | None = None


class Dense(_Layer):
    """Affine map x·W + b with W of shape (in, units)."""

    type: Literal["dense"]
    units: Size
    init: Init = Field(default_factory=_default_init)
    # A constant, or "marginals": the logit of each output's mean over the training data
    # (the original MNIST generator's sigmoid bias). Only valid right before G's sigmoid output.
    bias: Real | Literal["marginals"] = 0.0


class Maxout(_Layer):
    """Dense to units·pieces, then the max over each unit's `pieces` consecutive columns."""

    type: Literal["maxout"]
    units: Size
    pieces: Pieces
    init: Init = Field(default_factory=_default_init)
    bias: Real = 0.0


class Relu(_Layer):
    type: Literal["relu"]


class LeakyRelu(_Layer):
    type: Literal["leaky_relu"]
    slope: Annotated[float, Field(gt=0, lt=1), AfterValidator(_not_tiny)] = 0.2


class Tanh(_Layer):
    type: Literal["tanh"]


class Sigmoid(_Layer):
    type: Literal["sigmoid"]


class Linear(_Layer):
    """Identity: marks a linear (unsquashed) output."""

    type: Literal["linear"]


class Dropout(_Layer):
    """Keep each input with probability `keep` and multiply kept inputs by `scale`.

    The original code kept D's input pixels with 0.8 (scale 1.25) and hidden inputs with 0.5
    (scale 2). Active only while training; sampling and evaluation see the full network.
    """

    type: Literal["dropout"]
    keep: Annotated[float, Field(gt=0, le=1), AfterValidator(_not_tiny)]
    scale: PositiveReal | None = None  # default 1/keep

    @property
    def effective_scale(self) -> float:
        return self.scale if self.scale is not None else 1.0 / self.keep


class Reshape(_Layer):
    type: Literal["reshape"]
    shape: Annotated[list[Size], Field(min_length=1, max_length=4)]


class BatchNorm(_Layer):
    """Batch normalisation over the feature axis (batch statistics while training)."""

    type: Literal["batchnorm"]
    eps: PositiveReal = 1e-5
    momentum: Annotated[float, Field(gt=0, lt=1), AfterValidator(_not_tiny)] = 0.1


class _Conv(_Layer):
    channels: Size
    kernel: Annotated[int, Field(ge=1, le=64)]
    stride: Annotated[int, Field(ge=1, le=64)] = 1
    pad: Annotated[int, Field(ge=0, le=64)] = 0
    init: Init = Field(default_factory=_default_init)
    bias: Real = 0.0


class Conv2d(_Conv):
    """2-D convolution over (C, H, W) inputs; weight (channels, C_in, kernel, kernel)."""

    type: Literal["conv2d"]


class ConvTranspose2d(_Conv):
    """The paper's "deconvolution": out = (in − 1)·stride − 2·pad + kernel + output_pad;
    weight (C_in, channels, kernel, kernel)."""

    type: Literal["conv_transpose2d"]
    output_pad: Annotated[int, Field(ge=0, le=63)] = 0


class MaxoutConv(_Conv):
    """Convolution to channels·pieces maps, then the max over each channel's `pieces`
    consecutive maps (Pylearn2's MaxoutConvC01B)."""

    type: Literal["maxout_conv"]
    pieces: Pieces


class MaxPool(_Layer):
    type: Literal["max_pool"]
    kernel: Annotated[int, Field(ge=1, le=64)]
    stride: Annotated[int, Field(ge=1, le=64)] | None = None  # default: kernel
    pad: Annotated[int, Field(ge=0, le=32)] = 0


class Flatten(_Layer):
    type: Literal["flatten"]


Layer = Annotated[
    Union[Dense, Maxout, Relu, LeakyRelu, Tanh, Sigmoid, Linear, Dropout, Reshape, BatchNorm,
          Conv2d, ConvTranspose2d, MaxoutConv, MaxPool, Flatten],
    Field(discriminator="type"),
]


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


SQRT3 = math.sqrt(3.0)
