"""Write requirements.lock: Bifrost's runtime dependencies pinned at the versions of the
working virtual environment (`make lock`).

pip resolves pyproject's dependencies (not the dev extra) as a fresh install would, constrained
to what `pip freeze` reports here, so the image installs the versions the tests ran against.
The markers are evaluated for the image's interpreter, Debian bookworm's /usr/bin/python3
(3.11.2), which needs packages the venv's newer Python does not (e.g. redis's async-timeout).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = Path(__file__).resolve().parent / "requirements.lock"
IMAGE_PYTHON = "/usr/bin/python3"
HEADER = "# Bifrost's runtime dependencies for the image, pinned by `make lock` (infra/containers/lock.py).\n"


def main() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    with tempfile.TemporaryDirectory() as folder:
        requirements = Path(folder) / "requirements.txt"
        requirements.write_text("\n".join(dependencies) + "\n")
        constraints = Path(folder) / "constraints.txt"
        frozen = subprocess.run(
            [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        constraints.write_text(frozen)
        report = Path(folder) / "report.json"
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "--python", IMAGE_PYTHON, "install", "--dry-run"),
                *("--ignore-installed", "--quiet", "--report", str(report)),
                *("-c", str(constraints), "-r", str(requirements)),
            ],
            check=True,
        )
        installs = json.loads(report.read_text())["install"]
    pins = sorted(
        (f"{item['metadata']['name']}=={item['metadata']['version']}" for item in installs), key=str.lower
    )
    LOCK.write_text(HEADER + "\n".join(pins) + "\n")
    print(f"{LOCK.relative_to(ROOT)}: {len(pins)} packages")


if __name__ == "__main__":
    main()
