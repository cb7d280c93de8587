"""Coverage-guided fuzzing of the whole analysis with atheris (optional: ``make fuzz-atheris``).

The seeded mutation fuzzer (``tests/fuzz.py``, ``make fuzz``) is the one the docs' figures
come from; this one lets libFuzzer steer the mutations by the coverage of
``stopitd.analysis``, starting from a copy of the real fixtures. Any exception is a crash:
libFuzzer stops and writes the input under ``var/atheris-crashes/`` (make it a regression
fixture in ``fixtures/fuzz/``). Needs ``pip install atheris`` (the ``fuzz`` extra).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

try:
    import atheris
except ImportError:  # pragma: no cover - reported, not skipped
    raise SystemExit(
        "atheris is not installed: pip install -e '.[fuzz]' (or pip install atheris)"
    ) from None

with atheris.instrument_imports(include=["stopitd"]):
    from stopitd.analysis.policy import Policy
    from tests.fuzz import FIXTURES, run_analysis

POLICY = Policy()


def one_input(data: bytes) -> None:
    # the first byte picks how the bytes are read: as a report, or as an original
    if not data:
        return
    run_analysis(data[1:], POLICY, as_original=data[0] % 5 == 0)


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    corpus = root / "var" / "atheris-corpus"
    crashes = root / "var" / "atheris-crashes"
    if not corpus.exists():
        corpus.mkdir(parents=True)
        for i, path in enumerate(sorted(FIXTURES.rglob("*.eml"))):
            shutil.copyfile(path, corpus / f"fixture-{i:04d}")
    crashes.mkdir(parents=True, exist_ok=True)
    argv = [sys.argv[0], str(corpus), f"-artifact_prefix={crashes}/", *sys.argv[1:]]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
