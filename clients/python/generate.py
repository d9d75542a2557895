"""Generates the kit's messages and stub from protos/biome/user/v1/user_service.proto into
user_service_client/_proto/ (committed; tests/unit/clients/test_kit_generated.py fails when
they are stale). Run by `make gen`; usage: python clients/python/generate.py [--out DIR].

protoc's output is rewritten in two ways, so that the kit stands alone and never collides with
another copy of the same proto in the process (the server's own biome.user.v1 modules, or a
caller's, of any version):
- its imports name user_service_client._proto instead of biome.user.v1;
- the file goes into the kit's own descriptor pool (_pool.POOL), not protobuf's default pool,
  where a second, different user_service.proto fails to load ("duplicate file name").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = HERE.parents[1] / "protos"
SOURCE = "biome/user/v1/user_service.proto"
OUT = HERE / "user_service_client" / "_proto"
PACKAGE = "user_service_client._proto"
FILES = (
    "user_service_pb2.py",
    "user_service_pb2.pyi",
    "user_service_pb2_grpc.py",
    "user_service_pb2_grpc.pyi",
)

# (old, new, times it must occur) per generated file: a rewrite that no longer matches fails.
_REWRITES: dict[str, list[tuple[str, str]]] = {
    "user_service_pb2.py": [
        (
            "from google.protobuf.internal import builder as _builder\n",
            "from google.protobuf.internal import builder as _builder\n"
            f"from {PACKAGE} import _pool\n",
        ),
        ("_descriptor_pool.Default().AddSerializedFile(", "_pool.POOL.AddSerializedFile("),
        ("'biome.user.v1.user_service_pb2'", f"'{PACKAGE}.user_service_pb2'"),
    ],
    "user_service_pb2_grpc.py": [
        ("from biome.user.v1 import user_service_pb2", f"from {PACKAGE} import user_service_pb2"),
    ],
    "user_service_pb2_grpc.pyi": [
        ("from biome.user.v1 import user_service_pb2", f"from {PACKAGE} import user_service_pb2"),
    ],
}


def generate(out: Path) -> None:
    scripts = Path(sysconfig.get_path("scripts"))
    with tempfile.TemporaryDirectory() as raw:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{PROTOS}",
                f"--plugin=protoc-gen-mypy={scripts / 'protoc-gen-mypy'}",
                f"--plugin=protoc-gen-mypy_grpc={scripts / 'protoc-gen-mypy_grpc'}",
                f"--python_out={raw}",
                f"--grpc_python_out={raw}",
                f"--mypy_out={raw}",
                f"--mypy_grpc_out={raw}",
                SOURCE,
            ],
            check=True,
        )
        generated = Path(raw) / Path(SOURCE).parent
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            text = (generated / name).read_text()
            for old, new in _REWRITES.get(name, []):
                if text.count(old) != 1:
                    raise SystemExit(f"generate.py: {name}: expected {old!r} exactly once")
                text = text.replace(old, new)
            (out / name).write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
