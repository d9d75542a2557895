"""The client kit's committed messages and stub are what protos/ generates now, and load beside
the server's own generated modules and beside a differing copy of the same proto."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
KIT = ROOT / "clients" / "python"
GENERATED = KIT / "user_service_client" / "_proto"
FILES = (
    "user_service_pb2.py",
    "user_service_pb2.pyi",
    "user_service_pb2_grpc.py",
    "user_service_pb2_grpc.pyi",
)


def test_the_kits_generated_code_is_what_the_proto_generates_now(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(KIT / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )

    stale = [
        name for name in FILES if (tmp_path / name).read_text() != (GENERATED / name).read_text()
    ]
    assert not stale, f"{stale} are stale against protos/: run `make gen` and commit them"


def run_python(source: str, *path: Path) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter (its own descriptor pool) running ``source`` with ``path`` first."""
    prelude = f"import sys; sys.path[:0] = {[str(p) for p in path]!r}\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_kit_and_the_servers_generated_modules_load_in_one_process() -> None:
    result = run_python(
        """
        from biome.user.v1 import user_service_pb2 as server_pb
        from user_service_client import pb
        wire = pb.User(id="u", email="a@example.com").SerializeToString()
        assert server_pb.User.FromString(wire).email == "a@example.com"
        assert pb.User is not server_pb.User  # the kit's own pool
        """,
        ROOT / "protos",
        KIT,
    )

    assert result.returncode == 0, result.stderr


def test_the_kit_loads_beside_another_version_of_the_proto_in_either_order(
    tmp_path: Path,
) -> None:
    # A caller's own copy of the proto, of another version (one more field): in protobuf's default
    # pool, where a second, different file of that name would fail to load.
    proto = (ROOT / "protos" / "biome" / "user" / "v1" / "user_service.proto").read_text()
    changed = proto.replace(
        "int32 passkey_count = 13;", "int32 passkey_count = 13;\n  string nickname = 99;"
    )
    assert changed != proto
    source_dir = tmp_path / "src" / "biome" / "user" / "v1"
    source_dir.mkdir(parents=True)
    (source_dir / "user_service.proto").write_text(changed)
    out = tmp_path / "out"
    (out / "biome" / "user" / "v1").mkdir(parents=True)
    for package in ("biome", "biome/user", "biome/user/v1"):
        (out / package / "__init__.py").write_text("")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path / 'src'}",
            f"--python_out={out}",
            "biome/user/v1/user_service.proto",
        ],
        check=True,
    )
    other_first = """
        from biome.user.v1 import user_service_pb2 as theirs
        from user_service_client import pb
        assert theirs.User(nickname="n").nickname == "n"
        assert pb.User(id="u").id == "u"
        """
    kit_first = """
        from user_service_client import pb
        from biome.user.v1 import user_service_pb2 as theirs
        assert theirs.User(nickname="n").nickname == "n"
        assert pb.User(id="u").id == "u"
        """

    for source in (other_first, kit_first):
        result = run_python(source, out, KIT)
        assert result.returncode == 0, result.stderr
