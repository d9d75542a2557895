"""The image is built the way `make` builds the venv, and its Dockerfile passes hadolint."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
MAKEFILE = ROOT / "Makefile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_dockerfile_has_no_hadolint_findings() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_image_generates_code_and_installs_pinned_versions_like_the_makefile() -> None:
    dockerfile = DOCKERFILE.read_text()
    makefile = MAKEFILE.read_text()

    assert "protos/generate.sh" in dockerfile, "the Dockerfile does not run protos/generate.sh"
    assert "protos/generate.sh" in makefile, "the Makefile does not run protos/generate.sh"

    # Every pip install in the image is pinned by the lock file.
    installs = re.findall(r"pip install[^\n&]*", dockerfile)
    assert installs, "the Dockerfile installs nothing with pip"
    unpinned = [line for line in installs if "-c constraints.txt" not in line]
    assert not unpinned, f"Dockerfile pip installs without -c constraints.txt: {unpinned}"

    # The Makefile's install rules all go through $(PIP_INSTALL); only `make lock`
    # resolves afresh, by design, to rewrite constraints.txt.
    assert re.search(r"^PIP_INSTALL\s*:?=.*\binstall -c constraints\.txt\s*$", makefile, re.M)
    assert "$(PIP_INSTALL) -e" in makefile, "the Makefile does not install through $(PIP_INSTALL)"
