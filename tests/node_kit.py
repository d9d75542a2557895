"""Node.js for the tests that play a Node caller: ``npm ci`` into ``tests/node``, then scripts.

The packages (jose, @grpc/grpc-js, @grpc/proto-loader) are pinned by
``tests/node/package-lock.json`` and installed by ``npm ci`` from the configured registry,
checked against the lockfile's integrity hashes. The install is redone only when the lockfile
changes (a stamp beside ``node_modules``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"
_LOCKFILE = NODE_DIR / "package-lock.json"
_STAMP = NODE_DIR / "node_modules" / ".lockfile-sha256"


def _lock_digest() -> str:
    return hashlib.sha256(_LOCKFILE.read_bytes()).hexdigest()


def ensure_node_modules() -> Path:
    """Install the lockfile's packages unless they are already there; the ``node_modules`` path."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm must be on PATH for the Node.js caller tests")
    digest = _lock_digest()
    # Two pytest processes (or a test and `make`) must not run npm ci into one folder at once.
    with open(NODE_DIR / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (_STAMP.exists() and _STAMP.read_text() == digest):
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                check=True,
                timeout=300,
            )
            _STAMP.write_text(digest)
    return NODE_DIR / "node_modules"


def run_node(
    script: Path | str, *args: str, timeout: float = 60.0, input_json: object = None
) -> str:
    """Run ``script`` (a path, or ES module source text) with ``tests/node`` as working folder.

    Returns its stdout; a non-zero exit raises ``subprocess.CalledProcessError`` with stderr kept.
    ``input_json`` is written to the script's stdin as JSON.
    """
    ensure_node_modules()
    if isinstance(script, Path):
        command = ["node", str(script), *args]
    else:
        command = ["node", "--input-type=module", "-e", script, "--", *args]
    completed = subprocess.run(
        command,
        cwd=NODE_DIR,
        input=None if input_json is None else json.dumps(input_json),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise subprocess.CalledProcessError(
            completed.returncode, command, completed.stdout, completed.stderr
        )
    return completed.stdout
