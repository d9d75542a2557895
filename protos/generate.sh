#!/usr/bin/env bash
# Generates the Python messages, gRPC stubs and .pyi type stubs for every
# .proto under protos/biome/, beside each .proto. The protos under
# protos/google/ and protos/grpc/ are shipped for clients in other languages;
# Python gets their code from googleapis-common-protos and grpcio-health-checking. The Makefile and the Dockerfile
# both call this script, so local and image builds generate the same code.
# Usage: PYTHON=/path/to/venv/bin/python protos/generate.sh
set -euo pipefail

PYTHON="${PYTHON:-python3}"
protos_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The mypy-protobuf plugins are console scripts installed beside the interpreter.
scripts_dir="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"

for plugin in protoc-gen-mypy protoc-gen-mypy_grpc; do
    if [[ ! -x "$scripts_dir/$plugin" ]]; then
        echo "generate.sh: $scripts_dir/$plugin not found; install the codegen extra" >&2
        exit 1
    fi
done

# Paths are given relative to the repository root so that `-I protos` makes
# the generated imports absolute (`from biome.user.v1 import ...`).
cd "$protos_dir/.."
mapfile -t protos < <(find protos/biome -name '*.proto' | LC_ALL=C sort)
if [[ ${#protos[@]} -eq 0 ]]; then
    echo "generate.sh: no .proto files under $protos_dir" >&2
    exit 1
fi

# Drop earlier output first, so a renamed or removed .proto leaves nothing stale.
find protos \( -name '*_pb2.py' -o -name '*_pb2_grpc.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.pyi' \) -delete

"$PYTHON" -m grpc_tools.protoc \
    -I protos \
    --plugin="protoc-gen-mypy=$scripts_dir/protoc-gen-mypy" \
    --plugin="protoc-gen-mypy_grpc=$scripts_dir/protoc-gen-mypy_grpc" \
    --python_out=protos \
    --grpc_python_out=protos \
    --mypy_out=protos \
    --mypy_grpc_out=protos \
    "${protos[@]}"

echo "generate.sh: generated code for ${#protos[@]} proto file(s) under $protos_dir"
