"""The wheel carries the migrations, so `stopitd db upgrade` works outside the checkout.

(.ci/run also installs the project with all its dependencies into a fresh virtualenv and
runs `stopitd db upgrade` there; this test is the quick version for every `make test`.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_migrations_and_upgrades_a_database_outside_the_checkout(
    tmp_path: Path,
) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("stopitd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "stopitd/migrations/env.py" in names
    assert any(n.startswith("stopitd/migrations/versions/0001") for n in names)

    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    site = subprocess.run(
        [
            str(target / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    zipfile.ZipFile(wheel).extractall(site)
    # dependencies from the test venv; stopitd itself only from the wheel
    env = {**os.environ, "PYTHONPATH": sysconfig.get_path("purelib") + os.pathsep + site}
    elsewhere = tmp_path / "host"
    elsewhere.mkdir()
    (elsewhere / "stopitd.toml").write_text('[database]\nurl = "sqlite:///state/stopitd.db"\n')
    script = (
        "import stopitd, sys; from stopitd.cli import main; "
        "checkout = sys.argv.pop(1); "
        "assert 'site-packages' in stopitd.__file__ and checkout not in stopitd.__file__, "
        "stopitd.__file__; main()"
    )
    out = subprocess.run(
        [
            str(target / "bin" / "python"),
            "-c",
            script,
            str(ROOT),
            "db",
            "upgrade",
            "--config",
            "stopitd.toml",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "head" in out.stdout
    assert (elsewhere / "state" / "stopitd.db").is_file()
