"""What a Program trains for beyond its graphs: the adversarial loss and the regularisers
(the spec's training.loss and training.regularizers, resolved by the compiler to tensors).

State a regulariser keeps, by name in a trainer's state_dict (so checkpoints stay
backend-neutral and a resume is exact):
- spectral norm: `spectral/<tensor>/u` (rows,) and `spectral/<tensor>/v` (cols,), the power
  iteration's vectors of the weight seen as a matrix (`SpectralWeight`);
- EMA: `ema/<tensor>` for each of G's trainable tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

LOSSES = ("minimax", "non_saturating", "least_squares", "hinge", "wasserstein")
PROBABILITY_LOSSES = ("minimax", "non_saturating")  # D ends in a sigmoid, read via its logit
SCORE_LOSSES = ("least_squares", "hinge", "wasserstein")  # D ends in a raw score
PENALTIES = ("gradient_penalty", "r1")


@dataclass(frozen=True)
class Penalty:
    """A gradient penalty added to D's loss, on every `every`-th D-update (then weighted
    weight·every, as lazy regularisation does):
    - gradient_penalty: weight·E[(‖∇D(x̂)‖ − target)²], x̂ = εx + (1 − ε)G(z), ε ~ U(0, 1);
    - r1: weight/2·E[‖∇D(x)‖²] on the real minibatch.
    D's score is differentiated (the logit when D ends in a sigmoid)."""

    kind: str  # one of PENALTIES
    weight: float
    every: int = 1
    target: float = 1.0  # gradient_penalty only

    def due(self, d_updates: int) -> bool:
        """Whether the D-update numbered `d_updates` (0-based) applies this penalty."""
        return d_updates % self.every == 0


@dataclass(frozen=True)
class SpectralWeight:
    """A weight used as W / σ(W). The matrix is W with axis `axis` (the op's output units)
    moved first and the rest flattened: rows = W.shape[axis] (u), cols = the rest (v), as
    torch.nn.utils.spectral_norm sees nn.Linear (dim 0 of (out, in)), nn.Conv2d (dim 0) and
    nn.ConvTranspose2d (dim 1)."""

    tensor: str  # "D.h0.weight"
    shape: tuple[int, ...]
    axis: int

    @property
    def rows(self) -> int:
        return self.shape[self.axis]

    @property
    def cols(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n // self.rows

    @property
    def net(self) -> str:
        return self.tensor.split(".", 1)[0]


@dataclass(frozen=True)
class Ema:
    """ema ← decay·ema + (1 − decay)·θ after each G-update numbered ≥ start (1-based);
    ema ← θ before."""

    decay: float
    start: int = 0

    def rate(self, g_updates: int) -> float:
        """The decay to apply after G-update number `g_updates` (counted from 1): 0 copies θ."""
        return self.decay if g_updates > self.start else 0.0


@dataclass(frozen=True)
class Objective:
    loss: str = "non_saturating"
    penalties: tuple[Penalty, ...] = ()
    spectral: tuple[SpectralWeight, ...] = ()
    spectral_iterations: int = 1
    ema: Ema | None = None

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"not a loss: {self.loss!r}")
        for p in self.penalties:
            if p.kind not in PENALTIES:
                raise ValueError(f"not a penalty: {p.kind!r}")

    @property
    def raw_score(self) -> bool:
        """D's output is a score, not a probability."""
        return self.loss in SCORE_LOSSES

    def spectral_of(self, net: str) -> tuple[SpectralWeight, ...]:
        return tuple(s for s in self.spectral if s.net == net)

    def features(self) -> list[tuple[str, str]]:
        """(feature, spec path) of what a backend may lack, for `Backend.unsupported_feature`:
        the loss, then each regulariser."""
        out = [(f"loss:{self.loss}", "training.loss")]
        out += [(p.kind, f"training.regularizers.{p.kind}") for p in self.penalties]
        if self.spectral:
            out.append(("spectral_norm", "training.regularizers.spectral_norm"))
        if self.ema is not None:
            out.append(("ema", "training.regularizers.ema"))
        return out

    def metric_names(self) -> tuple[str, ...]:
        """The metrics each penalty adds to a trainer's running sums, after METRIC_SUMS: the
        term added to D's loss (weight times the penalty, without the lazy factor)."""
        return tuple(p.kind for p in self.penalties)
