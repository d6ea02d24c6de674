"""The regularisers' state in a CupyTrainer's state_dict, by the names advgraph.ir.objective
gives (so a checkpoint is backend-neutral): `spectral/<tensor>/u`, `spectral/<tensor>/v` from the
nets' `<net>.uv` buffers, and `ema/<tensor>` from `G.ema` (laid out as G.params)."""

from __future__ import annotations

from typing import Any

import numpy as np

from advgraph.errors import BackendError
from advgraph.ir import Program
from advgraph.objective import spectral_vectors

from .plan import Plan


def download(program: Program, plan: Plan, rt) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for net in ("G", "D"):
        if f"{net}.uv" in plan.buffers:
            uv = rt.download(f"{net}.uv")
            for s in program.objective.spectral_of(net):
                for part, view in zip("uv", plan.spectral[s.tensor]):
                    out[f"spectral/{s.tensor}/{part}"] = \
                        uv[view.offset:view.offset + view.extent].copy()
    if "G.ema" in plan.buffers:
        ema = rt.download("G.ema")
        for t in program.G.params():
            _, off, size = plan.param_offsets[t.name]
            out[f"ema/{t.name}"] = ema[off:off + size].reshape(t.shape).copy()
    return out


def upload(program: Program, plan: Plan, rt, state: dict[str, Any],
           params: np.ndarray) -> None:
    """From `state`: u and v of each normalised weight (objective.spectral_vectors: started
    from the weight when absent), the EMA (when absent, G's parameters `params`, flat: an EMA
    starts as θ)."""
    for net in ("G", "D"):
        if f"{net}.uv" not in plan.buffers:
            continue
        uv = np.zeros(plan.buffers[f"{net}.uv"].size, np.float32)
        for s in program.objective.spectral_of(net):
            vectors = spectral_vectors(state, s)
            for part, view, src in zip("uv", plan.spectral[s.tensor], vectors):
                key = f"spectral/{s.tensor}/{part}"
                vec = np.asarray(src, np.float32)
                if vec.shape != (view.extent,):
                    raise BackendError(f"{key}: shape {vec.shape} in the state, "
                                       f"({view.extent},) expected")
                uv[view.offset:view.offset + view.extent] = vec
        rt.upload(f"{net}.uv", uv)
    if "G.ema" in plan.buffers:
        ema = np.array(params, np.float32, copy=True)
        for t in program.G.params():
            key = f"ema/{t.name}"
            if key in state:
                src = np.asarray(state[key], np.float32)
                if tuple(src.shape) != tuple(t.shape):
                    raise BackendError(f"{key}: shape {tuple(src.shape)} in the state, "
                                       f"{tuple(t.shape)} expected")
                _, off, size = plan.param_offsets[t.name]
                ema[off:off + size] = src.reshape(-1)
        rt.upload("G.ema", ema)
