"""The analysis JSON as one compact line of text, written directly (pure).

``analysis_json_text(a)`` is exactly ``json.dumps(analysis_to_json(a), ensure_ascii=False,
separators=(",", ":"))``, without building the dicts first and without the encoder
escaping every key of every object again: one function per dataclass is generated from its
JSON plan and declared types (as ``model``'s dict converters are), with each key's text
written once, and each value of the declared type written by the C string escaper. Any
value of another type goes the general way (``to_jsonable`` then ``json``), so the text
never differs from the general path's (tests/analysis/test_jsontext.py checks both agree).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

from stopitd.analysis import model
from stopitd.analysis.model import Analysis, analysis_to_json, to_jsonable

_encode_text: Callable[[str], str] = json.encoder.encode_basestring
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _general(value: Any) -> str:
    """The reference text of one value: the dict converters, then the json module."""
    return _dumps(to_jsonable(value))


def _plain(value: Any) -> str:
    """A value whose declared type has no specialisation: None, bool, numbers and text
    written here, anything else the general way."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    cls = value.__class__
    if cls is str:
        return _encode_text(value)
    if cls is int:
        return int.__repr__(value)
    if cls is float and -_FLOAT_MAX <= value <= _FLOAT_MAX:  # not NaN nor infinite
        return float.__repr__(value)
    if cls is tuple:  # e.g. the (name, value) pairs of a feedback report
        return "[" + ",".join([_plain(v) for v in value]) + "]"
    return _general(value)


_FLOAT_MAX = sys.float_info.max


def _key(key: str) -> str:
    return _dumps(key) + ":"


def _keys(cls: type) -> set[str]:
    return {key for _, key, _ in model._plan(cls)}


def _members_code(cls: type) -> Callable[[Any], str] | None:
    """The generated writer of ``cls``'s members (the text between the braces), or None
    when a merged (flattened) field's keys could meet the parent's own."""
    declared = {f.name: str(f.type) for f in fields(cls)}
    ns: dict[str, Any] = {
        "_str": str, "_int": int, "_int_repr": int.__repr__, "_tuple": tuple,
        "_enc": _encode_text, "_general": _general, "_plain": _plain, "_iso": model._iso,
        "_datetime_cls": datetime,
    }
    own = {key for _, key, flattened in model._plan(cls) if not flattened}
    parts: list[str] = []
    checks: list[str] = []
    for name, key, flattened in model._plan(cls):
        if flattened:
            kind = vars(model).get(declared[name])
            if not (isinstance(kind, type) and is_dataclass(kind)) or _keys(kind) & own:
                return None
            ns[f"_T_{name}"], ns[f"_m_{name}"] = kind, _members_of(kind)
            checks.append(f"v.{name}.__class__ is _T_{name}")
            parts.append(f"_m_{name}(v.{name})")
        else:
            parts.append(f"{_key(key)!r} + {model.value_code(name, declared[name], ns, _TEXT)}")
    lines = ["def members(v):"]
    if checks:  # a merged value of another class: its keys are not known here
        lines.append(f"    if not ({' and '.join(checks)}):")
        lines.append("        return _general(v)[1:-1]")
        lines.append(f"    parts = ({', '.join(parts)},)")
        lines.append("    return ','.join([p for p in parts if p])")
    else:
        lines.append(f"    return ','.join(({', '.join(parts)},))")
    exec("\n".join(lines), ns)  # our own text, from our types
    members: Callable[[Any], str] = ns["members"]
    return members


# Per dataclass: its members writer; built on first use.
_MEMBERS: dict[type, Callable[[Any], str]] = {}


def _members_of(cls: type) -> Callable[[Any], str]:
    members = _MEMBERS.get(cls)
    if members is None:
        members = _members_code(cls) or (lambda v: _general(v)[1:-1])
        _MEMBERS[cls] = members
    return members


# The text writers' dialect: each value as JSON text, tuples as arrays.
_TEXT = model.Dialect(
    each={
        "str": "_enc({x})", "int": "_int_repr({x})", "datetime": "_enc(_iso({x}))",
        "enum": "_enc({x}._value_)", "dataclass": "'{{' + _c_{name}({x}) + '}}'",
    },
    sequence="'[' + ','.join([{each} for i in x]) + ']'",
    none="'null'",
    fallback="_general",
    other="_plain({get})",
    nested=lambda cls: _members_of(cls),
)


def value_text(value: Any) -> str:
    """One model value as compact JSON text (``ensure_ascii=False``)."""
    cls: type = value.__class__
    if is_dataclass(cls):
        return "{" + _members_of(cls)(value) + "}"
    return _general(value)


def analysis_json_text(analysis: Analysis, file: str | None = None) -> str:
    """``json.dumps(analysis_to_json(analysis), ensure_ascii=False, separators=(",", ":"))``;
    with ``file``, a ``"file"`` key first (what ``stopitd analyze --json`` prints)."""
    if analysis.__class__ is not Analysis:
        data: dict[str, Any] = {} if file is None else {"file": file}
        data.update(analysis_to_json(analysis))
        return _dumps(data)
    head = "{" if file is None else '{"file":' + _plain(file) + ","
    return (
        head
        + '"schema_version":' + _plain(analysis.schema_version)
        + ',"analyzer_version":' + _plain(analysis.analyzer_version)
        + ',"report":' + value_text(analysis.report)
        + ',"originals":[' + ",".join([value_text(o) for o in analysis.originals]) + "]}"
    )


__all__ = ["analysis_json_text", "value_text"]
