"""C text helpers shared by the emitters and the op plug-ins: literals, arrays, initialisers."""
from __future__ import annotations

import math
import re

import numpy as np

from mcusearch.errors import StageError


def c_float(v: float) -> str:
    if math.isinf(v):
        return "FLT_MAX" if v > 0 else "-FLT_MAX"
    if math.isnan(v):
        raise StageError("convert", "a weight or parameter is NaN")
    s = "%.9g" % v
    if "." not in s and "e" not in s:
        s += ".0"
    return s + "f"


def c_array(ctype: str, name: str, values: np.ndarray, per_line: int) -> str:
    flat = np.asarray(values).reshape(-1)
    if ctype == "float":
        items = [c_float(v) for v in flat.astype(np.float32).tolist()]
    else:
        items = [str(int(v)) for v in flat.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(items)}] = {{\n    {body}\n}};\n"


def ident(name: str) -> str:
    return re.sub(r"\W", "_", name).strip("_") or "op"


def init(fields: dict, indent: str = "") -> str:
    """A C99 designated initializer: {"a": 1, "g": {"b": 2}} -> { .a = 1, .g = { .b = 2 } },
    wrapped at about 96 columns."""
    inner = indent + "    "
    parts = [f".{k} = {init(v, inner) if isinstance(v, dict) else v}" for k, v in fields.items()]
    one_line = "{ " + ", ".join(parts) + " }"
    if len(one_line) + len(indent) <= 96 and "\n" not in one_line:
        return one_line
    lines, cur = [], ""
    for p in parts:
        if cur and ("\n" in p or len(inner) + len(cur) + len(p) + 2 > 96):
            lines.append(cur)
            cur = ""
        cur = f"{cur}, {p}" if cur else p
    lines.append(cur)
    return "{\n" + ",\n".join(inner + ln for ln in lines) + "\n" + indent + "}"


def comment(text: str) -> str:
    return text.replace("*/", "* /")


def shape_str(s) -> str:
    return "x".join(str(d) for d in s)


_DECL = re.compile(r"static const ([^\n=]*?)\b(\w+)\[(\d+)\] = \{\n(.*?)\n\};\n", re.S)


def dedupe_constants(text: str) -> str:
    """Keep one copy of identical constant arrays (same type, length and values): a later copy
    becomes ``#define NAME FIRST``. Unrolled recurrent layers read the same weights at every time
    step, and TFLite's graph names them once per step."""
    seen: dict[tuple[str, str, str], str] = {}

    def one(m: re.Match) -> str:
        key = (m.group(1), m.group(3), m.group(4))
        first = seen.setdefault(key, m.group(2))
        return m.group(0) if first == m.group(2) else f"#define {m.group(2)} {first}\n"
    return _DECL.sub(one, text)
