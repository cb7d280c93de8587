"""The wheel ships the built-in mail templates (an installed stopitd can acknowledge)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_templates(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("stopitd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"stopitd/templates/{p.relative_to(ROOT / 'config' / 'templates')}"
        for p in (ROOT / "config" / "templates").rglob("*.j2")
    }
    assert len(expected) == 10
    assert expected <= names
