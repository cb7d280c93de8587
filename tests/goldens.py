"""Golden files beside the fixtures: ``python -m tests.goldens`` (``make goldens``) rewrites them.

Each golden kind is a file suffix and a function from a fixture's bytes to JSON data, so
parallel work (forwards, hops, auth) never edits one file. A kind only covers the fixture
folders listed for it. Review the diff before committing regenerated goldens.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stopitd.analysis import forwarded
from stopitd.analysis.model import to_jsonable
from stopitd.analysis.policy import Limits

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

# Keys other parts of the analysis fill; a forwarded golden must not depend on them.
_NOT_FORWARDED = ("hops", "source", "auth")


def forwarded_golden(raw: bytes) -> dict[str, Any]:
    """What `forwarded.find_originals` finds: the report and each original's own keys."""
    report, originals = forwarded.find_originals(raw, Limits())
    items = []
    for original in originals:
        data = to_jsonable(original)
        for key in _NOT_FORWARDED:
            data.pop(key, None)
        items.append(data)
    return {"report": to_jsonable(report), "originals": items}


@dataclass(frozen=True)
class Kind:
    suffix: str  # e.g. ".forwarded.json", written as NAME.forwarded.json beside NAME.eml
    make: Callable[[bytes], Any]
    folders: tuple[str, ...]  # under fixtures/


KINDS: dict[str, Kind] = {
    ".forwarded.json": Kind(".forwarded.json", forwarded_golden, ("forwarded",)),
}


def golden_path(fixture: Path, kind: Kind) -> Path:
    return fixture.with_name(fixture.name.removesuffix(".eml") + kind.suffix)


def fixtures_for(kind: Kind) -> list[Path]:
    return sorted(p for folder in kind.folders for p in (FIXTURES / folder).glob("*.eml"))


def render(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def regenerate(suffixes: list[str] | None = None) -> list[Path]:
    written = []
    for suffix, kind in KINDS.items():
        if suffixes and suffix not in suffixes:
            continue
        for fixture in fixtures_for(kind):
            path = golden_path(fixture, kind)
            text = render(kind.make(fixture.read_bytes()))
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                written.append(path)
    return written


def main(argv: list[str]) -> int:
    """``python -m tests.goldens [SUFFIX ...]``: regenerate all kinds, or those named."""
    unknown = [a for a in argv if a not in KINDS]
    if unknown:
        print(f"unknown golden kinds {unknown}; known: {sorted(KINDS)}", file=sys.stderr)
        return 2
    for path in regenerate(argv or None):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
