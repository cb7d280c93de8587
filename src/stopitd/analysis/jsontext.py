"""The analysis JSON as one compact line of text, written directly (pure).

``analysis_json_text(a)`` is exactly ``json.dumps(analysis_to_json(a), ensure_ascii=False,
separators=(",", ":"))``, without building the dicts first and without the encoder
escaping every key of every object again: one writer per dataclass is generated from its
JSON plan and declared types (as ``model``'s dict converters are), with each key's text
written once. A writer first looks whether any of the object's text fields holds a
character JSON escapes (one C pass over them all): almost never, and then it joins the
fields between fixed fragments with no escaping call at all; else each field goes through
the C string escaper. Any value of another type goes the general way (``to_jsonable`` then
``json``), so the text never differs from the general path's (tests/analysis/
test_jsontext.py checks both agree).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from stopitd.analysis import model
from stopitd.analysis.model import (
    Analysis,
    KeyFields,
    ReportInfo,
    analysis_to_json,
    to_jsonable,
)

_encode_text: Callable[[str], str] = json.encoder.encode_basestring
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_join = "".join

# The bytes JSON escapes in a string (with ensure_ascii=False: the C0 controls, '"' and
# '\\'; non-ASCII text is written as it is). Each maps to another byte and every other byte
# to itself, so ``bytes.translate`` gives back its very argument when there is none.
_MARK_ESCAPED = bytes(b + 1 if b < 0x20 or b in b'"\\' else b for b in range(256))


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


def _namespace() -> dict[str, Any]:
    return {
        "_str": str, "_int": int, "_bool": bool, "_int_repr": int.__repr__, "_tuple": tuple,
        "_enc": _encode_text, "_general": _general, "_plain": _plain, "_iso": model._iso,
        "_datetime_cls": datetime, "_join": _join, "_comma": ",".join,
        "_MARK_ESCAPED": _MARK_ESCAPED, "_float": float,
        "_float_repr": float.__repr__, "_FLOAT_MAX": _FLOAT_MAX, "_map": map,
        "_UTC": UTC, "_MD": model._MONTH_DAY, "_HM": model._HOUR_MINUTE, "_SZ": model._SECOND_Z,
    }


def _merged_kind(cls: type, name: str) -> type | None:
    """The dataclass of ``cls``'s merged (flattened) field ``name``, or None when it is not
    one or its keys could meet ``cls``'s own."""
    kind = vars(model).get(str(next(f.type for f in fields(cls) if f.name == name)))
    own = {key for _, key, flattened in model._plan(cls) if not flattened}
    if not (isinstance(kind, type) and is_dataclass(kind)) or _keys(kind) & own:
        return None
    return kind


# --- the escaping path: every text field through the C escaper ---------------------------


def _members_code(cls: type) -> Callable[[Any], str] | None:
    """The generated writer of ``cls``'s members (the text between the braces), each text
    field escaped; None when a merged (flattened) field's keys could meet the parent's."""
    declared = {f.name: str(f.type) for f in fields(cls)}
    ns = _namespace()
    parts: list[str] = []
    checks: list[str] = []
    for name, key, flattened in model._plan(cls):
        if flattened:
            kind = _merged_kind(cls, name)
            if kind is None:
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


# Per dataclass: its escaping members writer; built on first use.
_MEMBERS: dict[type, Callable[[Any], str]] = {}


def _members_of(cls: type) -> Callable[[Any], str]:
    members = _MEMBERS.get(cls)
    if members is None:
        members = _members_code(cls) or (lambda v: _general(v)[1:-1])
        _MEMBERS[cls] = members
    return members


def _text_dialect(
    each: dict[str, str],
    sequence: str,
    nested: Callable[[type], Callable[..., str]],
    objects: str | None = None,
) -> model.Dialect:
    """A dialect writing JSON text: None as null, other values the general way."""
    return model.Dialect(each, sequence, "'null'", "_general", "_plain({get})", nested, objects)


# The escaping writers' dialect: each value as JSON text, tuples as arrays.
_TEXT = _text_dialect(
    {
        "str": "_enc({x})", "int": "_int_repr({x})", "datetime": "_enc(_iso({x}))",
        "enum": "_enc({x}._value_)", "dataclass": "'{{' + _c_{name}({x}) + '}}'",
    },
    "'[' + ','.join([{each} for i in x]) + ']'",
    lambda cls: _members_of(cls),
)


# --- the joining path: text fields checked once, then joined as they are -----------------


def _enum_texts(kind: type) -> dict[str, str]:
    """Each member's value of a StrEnum and its JSON text: one lookup, no escaping call."""
    assert issubclass(kind, StrEnum)
    return {m._value_: _encode_text(m._value_) for m in kind}


def _writer_code(cls: type, braces: bool) -> Callable[..., str] | None:
    """The generated writer of ``cls``: the object's text (``braces``) or its members; None
    when a merged (flattened) field's keys could meet the parent's.

    With two text fields or more, one ``translate`` over them all tells whether any needs
    escaping: when none does (nearly always), each is joined between fixed fragments that
    hold its quotes; else the escaping writer writes the object."""
    declared = {f.name: str(f.type) for f in fields(cls)}
    plan = model._plan(cls)
    texts = [n for n, _, flat in plan if not flat and declared[n] == "str"]
    joined = texts if len(texts) >= 2 else []  # one short text: its escaper costs less
    ns = _namespace()
    escaping = _members_of(cls)
    ns["_slow"] = (lambda v: "{" + escaping(v) + "}") if braces else escaping
    pieces: list[str] = []  # the code of each piece of the text, in order
    fixed = "{" if braces else ""  # fixed text not yet in ``pieces``
    merged = ""
    comma = ""  # before each field but the first
    for name, key, flattened in plan:
        if flattened:
            kind = _merged_kind(cls, name)
            if kind is None:
                return None
            if not model._plan(kind):  # nothing to merge (no comma either)
                continue
            merged = name
            ns[f"_T_{name}"], ns[f"_m_{name}"] = kind, _writer_of(kind, braces=False)
            pieces += [repr(fixed + comma), "merged"]
            fixed = ""
        elif name in joined:
            pieces += [repr(f'{fixed}{comma}{_key(key)}"'), f"v.{name}"]
            fixed = '"'
        else:
            value = model.value_code(name, declared[name], ns, _JOINED)
            if f"_T_{name}" in ns and issubclass(ns[f"_T_{name}"], StrEnum):
                ns[f"_V_{name}"] = _enum_texts(ns[f"_T_{name}"])
            pieces += [repr(fixed + comma + _key(key)), value]
            fixed = ""
        comma = ","
    fixed += "}" if braces else ""
    if fixed:
        pieces.append(repr(fixed))
    lines = [f"def write(v{', merged=None' if merged else ''}):"]
    if braces:  # the caller may not have checked the class (``map`` over a tuple)
        ns["_cls"] = cls
        lines += ["    if v.__class__ is not _cls:", "        return _general(v)"]
    if merged:  # the caller may pass the merged members' text, when it has it already
        lines += [
            "    if merged is None:",
            f"        if v.{merged}.__class__ is not _T_{merged}:",
            f"            return _general(v){'' if braces else '[1:-1]'}",
            f"        merged = _m_{merged}(v.{merged})",
        ]
    if joined:
        lines += [
            "    try:",
            f"        b = _join(({''.join(f'v.{n}, ' for n in joined)})).encode()",
            "    except (TypeError, UnicodeEncodeError):  # not text, or a lone surrogate",
            "        return _slow(v)",
            "    if b.translate(_MARK_ESCAPED) is not b:",
            "        return _slow(v)",
        ]
    lines.append(f"    return _join(({', '.join(pieces)},))")
    exec("\n".join(lines), ns)  # our own text, from our types
    write: Callable[..., str] = ns["write"]
    return write


# Per (dataclass, with braces): its writer; built on first use.
_WRITERS: dict[tuple[type, bool], Callable[..., str]] = {}


def _writer_of(cls: type, braces: bool = True) -> Callable[..., str]:
    write = _WRITERS.get((cls, braces))
    if write is None:
        write = _writer_code(cls, braces) or (
            (lambda v, merged=None: _general(v))
            if braces
            else (lambda v, merged=None: _general(v)[1:-1])
        )
        _WRITERS[cls, braces] = write
    return write


# A UTC datetime's text as ``_iso`` writes it, without the call (a third of its cost); any
# other, the call.
_ISO = (
    "(f'\"{{y}}{{_MD[{x}.month * 32 + {x}.day]}}{{_HM[{x}.hour * 60 + {x}.minute]}}"
    "{{_SZ[{x}.second]}}\"' if {x}.tzinfo is _UTC and (y := {x}.year) >= 1000"
    " else f'\"{{_iso({x})}}\"')"
)

# The joining writers' dialect: as the escaping one, with enum values' texts looked up,
# empty text and empty tuples written without a call, and nested objects by their writers.
_JOINED = _text_dialect(
    {
        "str": "('\"\"' if {x} == '' else _enc({x}))", "int": "_int_repr({x})",
        "bool": "('true' if {x} else 'false')", "datetime": _ISO,
        "float": "(_float_repr({x}) if -_FLOAT_MAX <= {x} <= _FLOAT_MAX else _general({x}))",
        "enum": "_V_{name}[{x}._value_]", "dataclass": "_c_{name}({x})",
    },
    "(_join(('[', _comma([{each} for i in x]), ']')) if x else '[]')",
    lambda cls: _writer_of(cls),
    # a writer with braces checks its value's class itself: no comprehension (a function
    # made and called per tuple), ``map`` calls it for each item
    "(_join(('[', _comma(_map(_c_{name}, x)), ']')) if x else '[]')",
)


def value_text(value: Any) -> str:
    """One model value as compact JSON text (``ensure_ascii=False``)."""
    cls: type = value.__class__
    if is_dataclass(cls):
        return _writer_of(cls)(value)
    return _general(value)


def analysis_json_text(analysis: Analysis, file: str | None = None) -> str:
    """``json.dumps(analysis_to_json(analysis), ensure_ascii=False, separators=(",", ":"))``;
    with ``file``, a ``"file"`` key first (what ``stopitd analyze --json`` prints)."""
    if analysis.__class__ is not Analysis:
        data: dict[str, Any] = {} if file is None else {"file": file}
        data.update(analysis_to_json(analysis))
        return _dumps(data)
    report, originals = analysis.report, analysis.originals
    if not _TOP:  # the writers this function calls, built on first use
        _TOP.extend((
            _writer_of(model.Original), _writer_of(model.ReportInfo),
            _writer_of(model.KeyFields, braces=False),
        ))
    write_original, write_report, write_fields = _TOP
    # `--original`: the report is the original, its key fields the very same value; their
    # text (the merged members of both objects) is written once
    shared = None
    if report.__class__ is ReportInfo and report.fields.__class__ is KeyFields:
        if originals and originals[0].fields is report.fields:
            shared = write_fields(report.fields)
        report_text = write_report(report, shared)
    else:
        report_text = value_text(report)
    version = analysis.schema_version
    analyzer = analysis.analyzer_version
    return _join((
        "{" if file is None else '{"file":' + _plain(file) + ",",
        '"schema_version":', _int_repr(version) if version.__class__ is int else _plain(version),
        ',"analyzer_version":', _encode_text(analyzer) if analyzer.__class__ is str
        else _plain(analyzer),
        ',"report":', report_text,
        ',"originals":[',
        # each writer checks its value's class itself
        ",".join([
            write_original(o, shared if shared and o.fields is report.fields else None)
            for o in originals
        ]),
        "]}",
    ))


# ``analysis_json_text``'s writers: the Original's, the ReportInfo's, the KeyFields' members.
_TOP: list[Callable[..., str]] = []
_int_repr = int.__repr__


__all__ = ["analysis_json_text", "value_text"]
