"""The value types of a spec: numeric ranges, the strict base model, weight initialisers.

Shared by the spec's root (spec/gan.py) and every op family's layer model (advgraph/ops/*),
so it sits below both and imports nothing else of advgraph.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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


def within_f32(x: float) -> float:
    if not -F32_LIMIT <= x <= F32_LIMIT:
        raise ValueError(f"{x:g} is out of range: values must lie within ±{F32_LIMIT:g} "
                         "(they are used in float32 arithmetic)")
    return x


def not_tiny(x: float) -> float:
    if 0 < x < F32_TINY:
        raise ValueError(f"{x:g} is too small: positive values must be at least {F32_TINY:g} "
                         "(smaller ones round to 0 in float32)")
    return x


Real = Annotated[float, AfterValidator(within_f32)]
PositiveReal = Annotated[float, Field(gt=0), AfterValidator(within_f32), AfterValidator(not_tiny)]
NonNegativeReal = Annotated[float, Field(ge=0), AfterValidator(within_f32),
                            AfterValidator(not_tiny)]
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


def default_init() -> XavierInit:
    return XavierInit(type="xavier")


class Layer(Strict):
    """The base of every layer model: an optional name (the node's, and its parameters'
    prefix: G.<name>.weight)."""

    name: Name | None = None


SQRT3 = math.sqrt(3.0)
