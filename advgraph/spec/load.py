"""YAML → GanSpec with every problem located as file:line:col plus a dotted path.

PyYAML's composer gives each node a start mark; we build plain Python data and, beside it, a
map from the path of every value (a tuple of keys and list indices) to its position. Pydantic's
error locations are mapped back through that table.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import Problem, SpecError
from .gan import GanSpec

PathT = tuple[Any, ...]
# Where an override (`load_text(..., overrides)`, the CLI's --set) is reported: the CLI words
# `overrides` as its flag (AdvGraphError.worded).
OVERRIDES = "`overrides`"


def dotted(path: PathT) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class Positions:
    """Where each value (and each mapping key) of a document starts."""

    source: str
    values: dict[PathT, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathT, tuple[int, int]] = field(default_factory=dict)
    overrides: set[PathT] = field(default_factory=set)  # paths set by --set

    def locate(self, path: PathT, msg: str, at_key: bool = False) -> Problem:
        # A path set on the command line is reported as such.
        for i in range(len(path), -1, -1):
            if path[:i] in self.overrides:
                return Problem(dotted(path), msg, source=OVERRIDES)
        table = self.keys if at_key and path in self.keys else self.values
        for i in range(len(path), -1, -1):  # nearest located ancestor
            pos = table.get(path[:i]) or self.values.get(path[:i])
            if pos is not None:
                return Problem(dotted(path), msg, self.source, pos[0], pos[1])
        return Problem(dotted(path), msg, self.source)


MAX_VALUES = 100_000  # a spec has hundreds; more means aliases expanding ("billion laughs")


def _build(node: yaml.Node, path: PathT, pos: Positions) -> Any:
    if len(pos.values) >= MAX_VALUES:
        raise SpecError(Problem(dotted(path), f"the document expands to more than {MAX_VALUES:,} "
                                              "values (nested YAML aliases?)", pos.source,
                                node.start_mark.line + 1, node.start_mark.column + 1))
    pos.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise SpecError(Problem(dotted(path), "mapping keys must be plain names",
                                        pos.source, knode.start_mark.line + 1,
                                        knode.start_mark.column + 1))
            key = knode.value
            if key in out:
                raise SpecError(Problem(dotted(path + (key,)), "duplicate key", pos.source,
                                        knode.start_mark.line + 1, knode.start_mark.column + 1))
            pos.keys[path + (key,)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            out[key] = _build(vnode, path + (key,), pos)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, path + (i,), pos) for i, v in enumerate(node.value)]
    try:
        return yaml.SafeLoader.construct_object(_SCALAR_LOADER, node)  # type: ignore[arg-type]
    except ValueError as e:  # e.g. an integer with thousands of digits (int() refuses it)
        raise SpecError(Problem(dotted(path), _scalar_problem(node, e), pos.source,
                                node.start_mark.line + 1, node.start_mark.column + 1)) from None


def _scalar_problem(node: yaml.Node, e: ValueError) -> str:
    text = str(getattr(node, "value", ""))
    if "digits" in str(e):
        return f"number too large ({len(text):,} characters); no value of a spec needs that many"
    return f"cannot read value {text[:40]!r}: {e}"


_SCALAR_LOADER = yaml.SafeLoader("")


def parse_yaml(text: str, source: str) -> tuple[Any, Positions]:
    pos = Positions(source)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = f"invalid YAML: {e.problem or e.context}"
        if mark is not None:
            raise SpecError(Problem("", msg, source, mark.line + 1, mark.column + 1)) from None
        raise SpecError(Problem("", msg, source)) from None
    except yaml.YAMLError as e:
        raise SpecError(Problem("", f"invalid YAML: {e}", source)) from None
    except RecursionError:
        raise SpecError(Problem("", "invalid YAML: nested too deeply", source)) from None
    if node is None:
        raise SpecError(Problem("", "the spec is empty", source))
    try:
        data = _build(node, (), pos)
    except RecursionError:
        raise SpecError(Problem("", "nested too deeply", source)) from None
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        raise SpecError(Problem("", f"invalid YAML: {e.problem}", source,
                                mark.line + 1 if mark else None,
                                mark.column + 1 if mark else None)) from None
    return data, pos


# ---- --set overrides -----------------------------------------------------------------------


def parse_override_path(text: str) -> PathT:
    """'generator.layers[2].units' → ('generator', 'layers', 2, 'units')."""
    import re

    if not re.fullmatch(r"[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*", text):
        raise SpecError(Problem(text, "not a dotted path (e.g. training.optimizer.lr or "
                                      "generator.layers[2].units)", source=OVERRIDES))
    out: list[Any] = []
    for part in text.split("."):
        name, *idx = part.split("[")
        out.append(name)
        out.extend(int(i.rstrip("]")) for i in idx)
    return tuple(out)


def apply_overrides(data: Any, overrides: list[str], pos: Positions) -> Any:
    """Apply `path=value` overrides (values parsed as YAML scalars/flow collections)."""
    for item in overrides:
        if "=" not in item:
            raise SpecError(Problem(item, "expected PATH=VALUE, e.g. training.optimizer.lr=0.05",
                                    source=OVERRIDES))
        key, raw = item.split("=", 1)
        path = parse_override_path(key.strip())
        if any("\udc80" <= c <= "\udcff" for c in raw):  # bytes the OS could not decode
            raise SpecError(Problem(key, "value is not UTF-8 text, which a spec cannot hold "
                                         "(a path with such bytes: rename it)",
                                    source=OVERRIDES))
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:  # one line: the problem, not the parser's position lines
            why = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise SpecError(Problem(key, f"value is not valid YAML: {why}",
                                    source=OVERRIDES)) from None
        except ValueError as e:  # e.g. an integer with thousands of digits
            msg = ("number too large; no value of a spec needs that many digits"
                   if "digits" in str(e) else f"value cannot be read: {e}")
            raise SpecError(Problem(key, msg, source=OVERRIDES)) from None
        except RecursionError:
            raise SpecError(Problem(key, "value is nested too deeply", source=OVERRIDES)) from None
        node = data
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or not 0 <= part < len(node):
                    raise SpecError(Problem(dotted(path[: i + 1]), "no such list item",
                                            source=OVERRIDES))
                if not isinstance(node[part], (dict, list)):
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
            else:
                if not isinstance(node, dict):
                    raise SpecError(Problem(dotted(path[: i + 1]), "not a mapping",
                                            source=OVERRIDES))
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
        last = path[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or not 0 <= last < len(node):
                raise SpecError(Problem(dotted(path), "no such list item", source=OVERRIDES))
        elif not isinstance(node, dict):
            raise SpecError(Problem(dotted(path), "not a mapping", source=OVERRIDES))
        _switch_interval(node, path, value, pos)
        node[last] = value
        pos.overrides.add(path)
    return data


INTERVAL_KEYS = ("epochs", "steps")  # an interval (spec.gan.Every) holds exactly one of them


def _switch_interval(node: dict, path: PathT, value: Any, pos: Positions) -> None:
    """Setting an interval's `steps` drops the `epochs` the spec gave it (and the other way
    round), so `--set training.stop.steps=N` works on an epoch-based spec. Both set on the
    command line is refused here, where the error can name --set."""
    if path[-1] not in INTERVAL_KEYS or value is None:
        return
    other = INTERVAL_KEYS[1 - INTERVAL_KEYS.index(path[-1])]
    if node.get(other) is None:
        return
    given = path[:-1] + (other,)
    # set on this command line, itself or with its mapping ('training.stop={epochs: 5}')
    if any(given[:len(o)] == o for o in pos.overrides):
        raise SpecError(Problem(dotted(path[:-1]), f"both '{other}' and '{path[-1]}' are set; "
                                f"an interval takes one of them", source=OVERRIDES))
    del node[other]


# ---- pydantic errors → located problems ----------------------------------------------------


def _unwrap(tp: Any) -> list[Any]:
    """The model classes an annotation may hold (through Optional, Union, Annotated, list)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, list) or str(origin) == "<class 'types.UnionType'>":
        return [m for a in typing.get_args(tp) for m in _unwrap(a)]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def _model_at(raw: Any, path: PathT) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path` of the raw document."""
    candidates, node = _candidates_at(raw, path)
    return _pick(candidates, node) if candidates else None


def _candidates_at(raw: Any, path: PathT) -> tuple[list[type[BaseModel]], Any]:
    """The model classes that may validate the node at `path` (the members of a union), and
    that raw node; no classes where the path leaves the models."""
    candidates: list[type[BaseModel]] = [GanSpec]
    node = raw
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        model = _pick(candidates, node)
        fld = model.model_fields.get(part) if model is not None else None
        if fld is None:
            return [], None
        node = node.get(part) if isinstance(node, dict) else None
        candidates = _unwrap(fld.annotation)
    return candidates, node


def _tags_at(raw: Any, path: PathT, tag: str) -> list[str]:
    """The values the tag (`type`, `dataset`) of the mapping at `path` may take."""
    tags: list[str] = []
    for cls in _candidates_at(raw, path)[0]:
        fld = cls.model_fields.get(tag)
        tags += [str(v) for v in typing.get_args(fld.annotation)] if fld is not None else []
    return list(dict.fromkeys(tags))


def _pick(candidates: list[type[BaseModel]], node: Any) -> type[BaseModel] | None:
    """Choose the union member a raw mapping selects by its tag (type/dataset)."""
    if len(candidates) == 1:
        return candidates[0]
    if isinstance(node, dict):
        for cls in candidates:
            for tag in ("type", "dataset"):
                fld = cls.model_fields.get(tag)
                if fld is not None and node.get(tag) in typing.get_args(fld.annotation):
                    return cls
    return None


def _raw_path(raw: Any, loc: tuple[Any, ...]) -> PathT:
    """Drop pydantic's union-member segments ('dense', 'function-after[...]') from a loc."""
    out: list[Any] = []
    node = raw
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _looks_internal(part, node):
            out.append(part)  # a missing key: report at its parent
            node = None
    return tuple(out)


def _looks_internal(part: str, node: dict) -> bool:
    tags = {node.get("type"), node.get("dataset")}
    return part in tags or "[" in part or part in {"float", "str", "int", "bool", "list"} or \
        part.startswith(("function-", "literal[", "constrained-"))


def _message(err: dict[str, Any], raw: Any, path: PathT) -> tuple[str, bool]:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        model = _model_at(raw, path[:-1])
        hint = ""
        if model is not None:
            names = list(model.model_fields)
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (expected one of: {', '.join(names)})"
        return f"unknown key {key!r}{hint}", True
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        ctx = err.get("ctx", {})
        tag = ctx.get("discriminator", "'type'").strip("'")
        expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        if kind == "union_tag_not_found":  # pydantic gives no tags here: the models do
            return f"missing {tag!r} (one of: {', '.join(_tags_at(raw, path, tag))})", False
        given = ctx.get("tag")
        close = difflib.get_close_matches(str(given), expected, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {tag} {given!r}{hint} (expected one of: {', '.join(expected)})", False
    if kind == "missing":
        return "required key is missing", False
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg, False


def problems_from_validation(e: ValidationError, raw: Any, pos: Positions) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for err in e.errors():
        path = _raw_path(raw, tuple(err["loc"]))
        if err["type"] in ("union_tag_invalid",):
            tag = err.get("ctx", {}).get("discriminator", "'type'").strip("'")
            path = path + (tag,)
        msg, at_key = _message(err, raw, path)
        p = pos.locate(path, msg, at_key=at_key)
        if str(p) not in seen:
            seen.add(str(p))
            problems.append(p)
    return problems


# ---- entry points ---------------------------------------------------------------------------


@dataclass
class LoadedSpec:
    spec: GanSpec
    positions: Positions
    path: Path | None  # the spec file (None when read from text)

    def problem(self, path: PathT, msg: str) -> Problem:
        return self.positions.locate(path, msg)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()


def load_text(text: str, source: str = "<spec>", overrides: list[str] | None = None,
              path: Path | None = None, stored: bool = False) -> LoadedSpec:
    """`stored`: the spec a run directory keeps, validated as when the run was made (a rule
    added since, such as a `name` that can number runs, must not lock a user out of a run)."""
    raw, pos = parse_yaml(text, source)
    if not isinstance(raw, dict):
        raise SpecError(Problem("", "a spec must be a mapping (key: value) at the top level",
                                source, 1, 1))
    if overrides:
        apply_overrides(raw, overrides, pos)
    try:
        spec = GanSpec.model_validate(raw, context={"stored": stored})
    except ValidationError as e:
        raise SpecError(problems_from_validation(e, raw, pos)) from None
    return LoadedSpec(spec, pos, path)


MAX_SPEC_BYTES = 2**20  # 1 MiB: specs are a few KiB; more is not a spec (and parsing it is slow)


def read_spec_text(path: str | Path) -> str:
    """A spec file's text: a regular file of at most MAX_SPEC_BYTES, read no further (never
    a device such as /dev/zero, which reads forever, nor a FIFO, which blocks)."""
    import os

    from ..atomic import not_regular

    def problem(msg: str) -> SpecError:
        return SpecError(Problem("", msg, str(path)))

    try:
        kind = not_regular(os.stat(path).st_mode)
        if kind is not None:
            raise problem(f"is {kind}, not a spec file")
        with open(path, "rb") as f:
            blob = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise problem("no such spec file") from None
    except OSError as e:
        raise problem(f"cannot read: {e.strerror or e}") from None
    if len(blob) > MAX_SPEC_BYTES:
        raise problem(f"larger than {MAX_SPEC_BYTES // 2**20} MiB, the most a spec may be "
                      "(specs are a few KiB); not read further")
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise problem(f"not UTF-8 text ({e.reason} at byte {e.start})") from None


def load_file(path: str | Path, overrides: list[str] | None = None,
              stored: bool = False) -> LoadedSpec:
    return load_text(read_spec_text(path), str(path), overrides, Path(path), stored)


def dump_resolved(spec: GanSpec) -> str:
    """The spec with every default filled in, as YAML (written into each run directory)."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
