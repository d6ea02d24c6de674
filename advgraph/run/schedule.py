"""Per-update learning rates and momenta, from the spec's optimiser."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..backend_protocol import OptimConfig
from ..spec.gan import SGD, Adam, MomentumRamp


@dataclass(frozen=True)
class Schedule:
    """lr and momentum for the t-th update (t from 0) in a given completed-epoch count."""

    opt: SGD | Adam

    def lr(self, t: int) -> float:
        if isinstance(self.opt, SGD):
            # lr / decay^t in log space: decay^t overflows a float long before a run ends.
            return max(self.opt.lr * math.exp(-t * math.log(self.opt.lr_decay)), self.opt.min_lr)
        return self.opt.lr

    def momentum(self, epoch: int) -> float:
        if isinstance(self.opt, Adam):
            return 0.0
        mom = self.opt.momentum
        if not isinstance(mom, MomentumRamp):
            return float(mom)
        # Pylearn2's MomentumAdjustor: init until `start`, linear to `final` at `saturate`.
        alpha = min(max((epoch - mom.start) / (mom.saturate - mom.start), 0.0), 1.0)
        return (1 - alpha) * mom.init + alpha * mom.final

    def config(self) -> OptimConfig:
        if isinstance(self.opt, Adam):
            return OptimConfig("adam", self.opt.beta1, self.opt.beta2, self.opt.eps)
        return OptimConfig("sgd")
