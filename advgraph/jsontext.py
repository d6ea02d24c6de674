"""The one way advgraph turns values into JSON text: strict JSON (`allow_nan=False`), so no
file or listing ever holds a bare NaN or Infinity token, which JSON does not have and strict
parsers refuse.

Where a non-finite number is a legitimate result (the last row of a diverged run logs its NaN
losses) the caller says so with `nonfinite=True`: each such number is written as null and the
mapping holding it records what it was under "nonfinite" (e.g. {"d_loss": "NaN"}). Anywhere
else a non-finite number is a bug upstream and an error naming what was being written and
where in it the number is.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import WriteError

NONFINITE_KEY = "nonfinite"


def _text(v: float) -> str:
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def _is_nonfinite(v: Any) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _nulled(obj: Any) -> Any:
    """obj with its non-finite floats as None, each recorded in its mapping's NONFINITE_KEY
    (a list's under its key with the index, "scores[3]")."""
    if isinstance(obj, dict):
        out, why = {}, {}
        for k, v in obj.items():
            if _is_nonfinite(v):
                out[k], why[str(k)] = None, _text(v)
            elif isinstance(v, (list, tuple)):
                out[k] = [_nulled(x) for x in v]
                why.update({f"{k}[{i}]": _text(x) for i, x in enumerate(v) if _is_nonfinite(x)})
            else:
                out[k] = _nulled(v)
        if why:
            out[NONFINITE_KEY] = {**out.get(NONFINITE_KEY, {}), **why}
        return out
    if isinstance(obj, (list, tuple)):
        return [_nulled(x) for x in obj]
    return None if _is_nonfinite(obj) else obj


def restored(obj: dict[str, Any]) -> dict[str, Any]:
    """A mapping read back from a file written with `nonfinite=True`: its top-level values that
    were written as null are the non-finite floats its record names again (the record itself
    is dropped), so a reader shows a diverged run's NaN loss as NaN, not as a missing value."""
    why = obj.get(NONFINITE_KEY)
    if not isinstance(why, dict):
        return obj
    back = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    out = {k: v for k, v in obj.items() if k != NONFINITE_KEY}
    for k, text in why.items():
        if k in out and out[k] is None and text in back:
            out[k] = back[text]
    return out


def _where_nonfinite(obj: Any, path: str = "") -> str | None:
    """The dotted path of the first non-finite float in obj (None: there is none)."""
    if _is_nonfinite(obj):
        return path or "the value"
    items = (obj.items() if isinstance(obj, dict) else
             enumerate(obj) if isinstance(obj, (list, tuple)) else ())
    for k, v in items:
        sub = f"{path}[{k}]" if isinstance(k, int) else (f"{path}.{k}" if path else str(k))
        found = _where_nonfinite(v, sub)
        if found:
            return found
    return None


def dumps(obj: Any, where: str, nonfinite: bool = False, **kwargs: Any) -> str:
    """obj as strict JSON text (json.dumps's `kwargs`: indent, default, …); `where` names what
    is written (a file) for the error. `nonfinite`: NaN and ±∞ are legitimate here and are
    written as null with their record (see the module); otherwise they are a WriteError."""
    if nonfinite:
        obj = _nulled(obj)
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as e:
        if "JSON compliant" not in str(e):
            raise
        raise WriteError(f"{where}: not written: {_where_nonfinite(obj)} is not a finite "
                         "number, which JSON cannot hold") from None


def dump_bytes(obj: Any, where: str, nonfinite: bool = False, **kwargs: Any) -> bytes:
    """dumps, as the UTF-8 bytes of a file ending in a newline."""
    return (dumps(obj, where, nonfinite, **kwargs) + "\n").encode()
