"""A sweep's members: the seeds (`--seeds 0-15`) × the varied values (`--vary KEY=V1,V2`), each
a spec of its own, validated as `--set` would validate it, and named as a run."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError, UsageError
from ..names import NAME_RE
from ..spec import LoadedSpec, load_text
from ..spec.load import parse_override_path, read_spec_text

MAX_MEMBERS = 4096  # far beyond any memory; a typo such as 0-100000 is refused before parsing
SEED_MAX = 2**63 - 1


@dataclass(frozen=True)
class Vary:
    key: str  # a dotted override path, as --set takes it
    raw: tuple[str, ...]  # the values as given (YAML text), in order
    values: tuple[Any, ...]  # as YAML reads them


@dataclass(frozen=True)
class Member:
    name: str  # its run's name: <sweep>.<key>-<value>….s<seed>
    seed: int
    values: dict[str, Any] = field(default_factory=dict)  # varied key → value
    raws: dict[str, str] = field(default_factory=dict)  # varied key → value as given

    @property
    def setting(self) -> str:
        """The varied values, the seed left out: what eval averages over seeds."""
        return ", ".join(f"{k}={v}" for k, v in self.raws.items()) or "all"

    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.raws.items()] + [f"training.seed={self.seed}"]


def parse_seeds(text: str) -> list[int]:
    """'0-15', '3', '0,2,5', '0-3,10-12' → the seeds, in order; each at most once."""
    out: list[int] = []
    if not text.strip():
        raise UsageError("--seeds is empty: give seeds such as 0-15 or 0,3,7")
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d{1,19})\s*(?:-\s*(\d{1,19})\s*)?", part)
        if m is None:
            raise UsageError(f"--seeds {text!r}: {part.strip()!r} is not a seed or a range "
                             "(non-negative integers: 0-15, 3, 0,2,5)")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise UsageError(f"--seeds {text!r}: the range {part.strip()} runs backwards")
        if hi > SEED_MAX:
            raise UsageError(f"--seeds {text!r}: seeds must be below 2**63")
        if len(out) + hi - lo + 1 > MAX_MEMBERS:
            raise UsageError(f"--seeds {text!r}: more than {MAX_MEMBERS} seeds")
        out.extend(range(lo, hi + 1))
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise UsageError(f"--seeds {text!r}: seed {dup[0]} is given twice")
    return out


def _split_values(text: str) -> list[str]:
    """Split on the commas outside brackets: '0.1,[1,2],x' → ['0.1', '[1,2]', 'x']."""
    out, depth, cur = [], 0, ""
    for c in text:
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    return out + [cur]


def parse_vary(items: list[str]) -> list[Vary]:
    out: list[Vary] = []
    for item in items:
        if "=" not in item:
            raise UsageError(f"--vary {item!r}: expected KEY=V1,V2,… (e.g. "
                             "training.optimizer.lr=0.05,0.1)")
        key, text = (s.strip() for s in item.split("=", 1))
        try:
            parse_override_path(key)
        except SpecError as e:
            raise UsageError(f"--vary {item!r}: {key!r} is {e.problems[0].msg}") from None
        if key == "training.seed":
            raise UsageError("--vary training.seed: give the seeds with --seeds")
        if any(v.key == key for v in out):
            raise UsageError(f"--vary {key} is given twice: list its values once, "
                             "comma-separated")
        raw = tuple(v.strip() for v in _split_values(text))
        if not text or any(not v for v in raw):
            raise UsageError(f"--vary {item!r}: an empty value (give KEY=V1,V2,…)")
        try:
            values = tuple(yaml.safe_load(v) for v in raw)
        except (yaml.YAMLError, ValueError, RecursionError):
            raise UsageError(f"--vary {item!r}: a value is not valid YAML") from None
        if len(set(map(repr, values))) < len(values):
            raise UsageError(f"--vary {item!r}: a value is given twice")
        out.append(Vary(key, raw, values))
    return out


def _short_keys(vary: list[Vary]) -> dict[str, str]:
    """A key's last component names it in member names, two when that is ambiguous."""
    last = [v.key.split(".")[-1] for v in vary]
    return {v.key: (s if last.count(s) == 1 else "_".join(v.key.split(".")[-2:]))
            for v, s in zip(vary, last)}


def members(sweep: str, seeds: list[int], vary: list[Vary]) -> list[Member]:
    """The cross product, varied values outermost, seeds innermost."""
    short = _short_keys(vary)
    combos = list(itertools.product(*[list(zip(v.raw, v.values)) for v in vary]))
    if len(combos) * len(seeds) > MAX_MEMBERS:
        raise UsageError(f"{len(combos)} settings × {len(seeds)} seeds is more than "
                         f"{MAX_MEMBERS} members")
    out = []
    for ci, combo in enumerate(combos):
        raws = {v.key: r for v, (r, _) in zip(vary, combo)}
        values = {v.key: x for v, (_, x) in zip(vary, combo)}
        tag = "".join(f".{short[k]}-{r}" for k, r in raws.items())
        for s in seeds:
            name = f"{sweep}{tag}.s{s}"
            if not NAME_RE.fullmatch(name):  # a value no name can hold ('[1,2]', 'a b', …)
                name = f"{sweep}.m{ci:03d}.s{s}"
            if not NAME_RE.fullmatch(name):
                name = f"{sweep}.{len(out):04d}"
            if not NAME_RE.fullmatch(name):
                raise UsageError(f"sweep name {sweep!r} leaves no room for its members' names "
                                 f"({name!r} is over 100 characters): give a shorter --name")
            out.append(Member(name, s, values, raws))
    return out


def load_members(spec: Path, overrides: list[str], members_: list[Member]) -> list[LoadedSpec]:
    """Each member's spec: the file (read once: every member the same text), --set, then its
    values and seed; a value that fails validation is located and names the member."""
    if any(o.split("=", 1)[0].strip() == "training.seed" for o in overrides):
        raise UsageError("--set training.seed: each member's seed is its --seeds one (the "
                         "--set would be ignored); give the seeds with --seeds")
    out, text = [], read_spec_text(spec)
    for m in members_:
        try:
            out.append(load_text(text, str(spec), overrides + m.overrides(), Path(spec)))
        except SpecError as e:
            if not m.raws:
                raise
            raise UsageError(f"member {m.name} ({m.setting}): "
                             + e.render().replace("\n", "\n  ")) from None
    return out
