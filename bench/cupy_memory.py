"""Device memory of the cupy backend's training plan at each spec's batch size (data set
excluded), scratch with one buffer each and reused by liveness, as rows of bench/RESULTS.md's
table (no GPU needed).

    python bench/cupy_memory.py specs/mnist.yaml specs/cifar10-conv.yaml
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backends"))
from advgraph.compile import compile_spec  # noqa: E402
from advgraph.data import data_info  # noqa: E402
from advgraph.spec import load_file  # noqa: E402
from advgraph.run.schedule import Schedule  # noqa: E402
from advgraph_cupy import lowering as L  # noqa: E402
from advgraph_cupy import memory as M  # noqa: E402
from advgraph_cupy.backend import HOST_WRITTEN  # noqa: E402


def row(spec: Path) -> str:
    loaded = load_file(spec)
    t = loaded.spec.training
    optim = {g: Schedule(t.optimizer_for(g)).config() for g in ("G", "D")}
    plan = L.lower(compile_spec(loaded, data_info(loaded)), t.batch_size, optim)
    b = M.memory_bytes(plan, HOST_WRITTEN)
    peak = M.peak_live(plan, M.liveness(plan, HOST_WRITTEN))

    def mib(v: int) -> str:
        return f"{v / 2**20:,.1f}"

    return (f"| {datetime.date.today()} | {spec.name} | {t.batch_size} | {mib(b['state'])} | "
            f"{mib(b['scratch'])} | {mib(b['reused'])} | {mib(peak)} | "
            f"{mib(b['state'] + b['scratch'])} → {mib(b['state'] + b['reused'])} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+", type=Path)
    for spec in ap.parse_args().specs:
        print(row(spec))


if __name__ == "__main__":
    main()
