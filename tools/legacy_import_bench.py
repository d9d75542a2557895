"""The bulk-import benchmark (a benchmark, not a test): N generated AspNetUsers rows into moto.

    python -m tools.legacy_import_bench --rows 100000          (make bench-import-legacy)

Writes an AspNetUsers-shaped CSV, starts the embedded DynamoDB (moto, as the tests do) on a
loopback port, runs ``user-service import-legacy --dry-run`` and then the real import as
subprocesses, and prints both times and the rows per second of the real run, with the machine.
The passwords are ASP.NET Identity V3 hashes (PBKDF2-HMAC-SHA512, 100,000 iterations, as .NET 7
and later write them) of ``password-<n>``; deriving 100,000 of them would take longer than the
import, so the rows share a pool of HASH_POOL hashes (the import checks a hash's shape, it never
derives it, so sharing costs it nothing).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

HASH_POOL = 64
ROOT = Path(__file__).resolve().parent.parent
ASPNET_COLUMNS = (
    "Id",
    "Email",
    "EmailConfirmed",
    "PasswordHash",
    "LockoutEnd",
    "LockoutEnabled",
    "AccessFailedCount",
    "FirstName",
    "LastName",
    "CreatedAt",
)
_PRF = {"sha1": 0, "sha256": 1, "sha512": 2}


def aspnet_v3_hash(
    password: str, *, salt: bytes, iterations: int = 100_000, prf: str = "sha512"
) -> str:
    """ASP.NET Identity's V3 hash of ``password``, base64 as AspNetUsers.PasswordHash holds it:
    0x01, the PRF, the iteration count and the salt length (big-endian uint32), salt, subkey."""
    subkey = hashlib.pbkdf2_hmac(prf, password.encode(), salt, iterations, 32)
    header = struct.pack(">BIII", 1, _PRF[prf], iterations, len(salt))
    return base64.b64encode(header + salt + subkey).decode()


def aspnet_v2_hash(password: str, *, salt: bytes) -> str:
    """ASP.NET Identity's V2 hash: 0x00, a 16-byte salt, PBKDF2-HMAC-SHA1 at 1,000 iterations."""
    subkey = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, 1000, 32)
    return base64.b64encode(b"\x00" + salt + subkey).decode()


def write_rows(path: Path, rows: int, *, iterations: int = 100_000) -> None:
    """``rows`` AspNetUsers rows with a CSV header; row n has the password ``password-<n %
    HASH_POOL>``, every seventh an unconfirmed email, every hundredth a lockout still running."""
    pool = [
        aspnet_v3_hash(f"password-{n}", salt=os.urandom(16), iterations=iterations)
        for n in range(min(HASH_POOL, rows))
    ]
    created = datetime(2019, 1, 1, tzinfo=UTC)
    locked_until = datetime.now(UTC) + timedelta(days=30)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(ASPNET_COLUMNS)
        for n in range(rows):
            writer.writerow(
                (
                    str(uuid.uuid4()),
                    f"User.{n}@Example.com",
                    "False" if n % 7 == 0 else "True",
                    pool[n % len(pool)],
                    locked_until.isoformat(sep=" ") if n % 100 == 0 else "",
                    "True",
                    "0",
                    f"First{n}",
                    f"Last{n}",
                    (created + timedelta(minutes=n)).isoformat(sep=" "),
                )
            )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the embedded DynamoDB did not start on port {port}")


def _run(env: dict[str, str], *args: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "server", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"user-service {' '.join(args)} exited {done.returncode}")
    print("\n".join(done.stdout.splitlines()[:12]))
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.legacy_import_bench")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    port = _free_port()
    moto = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.embedded_dynamodb",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "AspNetUsers.csv"
            started = time.monotonic()
            write_rows(path, args.rows)
            print(f"generated {args.rows} rows in {time.monotonic() - started:.1f} s")
            env = {
                **os.environ,
                "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{port}",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "protos")]),
            }
            _run(env, "init-tables")
            checking = _run(env, "import-legacy", "--dry-run", str(path))
            writing = _run(env, "import-legacy", "--concurrency", str(args.concurrency), str(path))
    finally:
        moto.terminate()
        moto.wait()
    print(
        f"dry run: {checking:.1f} s ({args.rows / checking:.0f} rows/s); "
        f"import: {writing:.1f} s ({args.rows / writing:.0f} rows/s) "
        f"on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
