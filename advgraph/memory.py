"""How much memory this process holds and can still allocate (the smaller of the kernel's
estimate of available memory, MemAvailable, and what its cgroup, v2 or v1, still allows;
sysconf where neither can be read), and the check that refuses work which cannot fit. No torch,
no third-party imports, nothing of advgraph above the errors: the estimate of a training
process's peak is run.session.training_peak (with ops.costs.training_peak_bytes)."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a number near 2^63


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def meminfo_available() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _own_cgroups() -> tuple[list[str], str | None]:
    """(v2 path, v1 memory controller path) of this process, from /proc/self/cgroup."""
    v2, v1 = [], None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return [], None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2.append(parts[2])
        elif "memory" in parts[1].split(","):
            v1 = parts[2]
    return v2, v1


def cgroup_available() -> int | None:
    """What the tightest memory limit among this process's cgroups still allows (limit minus
    usage, not counting reclaimable page cache), or None without a limit."""
    best: int | None = None
    v2, v1 = _own_cgroups()
    for rel in v2:
        d = CGROUP_ROOT / rel.lstrip("/")
        while True:  # every ancestor's limit applies too
            limit = _read_int(d / "memory.max")
            if limit is not None:
                used = _read_int(d / "memory.current") or 0
                used -= _stat_value(d / "memory.stat", "inactive_file")
                left = max(limit - max(used, 0), 0)
                best = left if best is None else min(best, left)
            if d == CGROUP_ROOT or CGROUP_ROOT not in d.parents:
                break
            d = d.parent
    for d in ([CGROUP_ROOT / "memory" / v1.lstrip("/")] if v1 is not None else []) + \
            [CGROUP_ROOT / "memory"]:
        limit = _read_int(d / "memory.limit_in_bytes")
        if limit is not None and limit < _UNLIMITED:
            used = _read_int(d / "memory.usage_in_bytes") or 0
            used -= _stat_value(d / "memory.stat", "total_inactive_file")
            left = max(limit - max(used, 0), 0)
            best = left if best is None else min(best, left)
    return best


def sysconf_available() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def available_bytes() -> int | None:
    """Bytes this process may still allocate (None where nothing can tell)."""
    found = [v for v in (meminfo_available(), cgroup_available()) if v is not None]
    if not found:
        s = sysconf_available()
        return s
    return min(found)


def describe(nbytes: int) -> str:
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.1f} GiB"
    return f"{nbytes / 2**20:.1f} MiB"


def check_fits(option: str, what: str, need: int, detail: str = "", held: int = 0) -> None:
    """Refuse, before allocating anything, work that cannot fit in the memory still available:
    `what` (e.g. "--n 10,000: 10,000 samples need") needs an estimated `need` bytes at its
    peak, of which this process already holds `held`. The error names the estimate and
    `option`, the setting to lower (nothing is refused when nothing can tell what is free)."""
    from .errors import UsageError

    have = available_bytes()
    if have is None or need - held <= have:
        return
    more = f"; {describe(need - held)} more than this process holds" if held else ""
    raise UsageError(f"{what} at least {describe(need)}{detail}{more}, but only "
                     f"{describe(have)} of memory is available; lower {option}")


GENERATE_BATCH = 1000  # G runs this many samples at a time (run.samples.run_generator)


def generation_bytes(program, n: int, copies: int, per_sample: int = 0) -> int:
    """A lower bound on the memory drawing n samples of G takes, beyond what the process
    holds: their noise and labels, `copies` float32 copies of the samples (the generated
    batches and their concatenation; a file's or a figure's copies), `per_sample` more bytes
    each (work that grows with n), and one batch's activations."""
    from math import prod

    size = prod(program.data_shape)
    acts = sum(prod(node.shape) for node in program.G.nodes)
    labels = 8 if program.classes is not None else 0
    return (n * (4 * program.prior.dim + labels + 4 * copies * size + per_sample)
            + 4 * min(n, GENERATE_BATCH) * acts)


def current_rss() -> int | None:
    """This process's resident memory now, in bytes (/proc/self/statm)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
