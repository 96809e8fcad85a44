#!/usr/bin/env bash
# Regenerates streamd/sources/mqtt/sparkplug_b_pb2.py (protobuf gencode) and sparkplug_b_pb2.pyi (its
# typed stub, by mypy-protobuf) from streamd/sources/mqtt/sparkplug_b.proto. The tools are not project
# dependencies: they go into a throwaway venv that is removed afterwards.
#
#   scripts/gen-sparkplug.sh            # PYTHON=python3.11 scripts/gen-sparkplug.sh to pick one
#
# Versions: grpcio-tools 1.63–1.65 bundle protoc 26.1, whose Python gencode ("Protobuf Python
# Version: 5.26.1") has no runtime version check and loads on every runtime that pyproject allows
# (protobuf>=5.26,<8). From grpcio-tools 1.66 (protoc 27+) the gencode calls
# runtime_version.ValidateProtobufRuntimeVersion, which needs protobuf >= the gencode version (the
# module does not even exist before 5.27.0), so a newer pin means raising that lower bound.
# mypy-protobuf 3.7.0 is the newest release that runs on the protobuf (<6) that grpcio-tools 1.65
# installs. The generated files are excluded from ruff in pyproject.toml; don't format them.
set -euo pipefail

GRPCIO_TOOLS=1.65.5
MYPY_PROTOBUF=3.7.0
PROTOBUF=5.29.6 # runs the protoc plugins only; unrelated to the runtime streamd uses

cd "$(dirname "$0")/.."
proto=streamd/sources/mqtt/sparkplug_b.proto
out=streamd/sources/mqtt/sparkplug_b_pb2.py

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-python3}" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
    "grpcio-tools==$GRPCIO_TOOLS" "mypy-protobuf==$MYPY_PROTOBUF" "protobuf==$PROTOBUF"

# -I . makes the registered file name streamd/sources/mqtt/sparkplug_b.proto (unique in the default
# descriptor pool) and writes both outputs next to the .proto.
"$tmp/venv/bin/python" -m grpc_tools.protoc -I . \
    --python_out=. \
    --plugin=protoc-gen-mypy="$tmp/venv/bin/protoc-gen-mypy" --mypy_out=quiet:. \
    "$proto"

if grep -q ValidateProtobufRuntimeVersion "$out"; then
    echo "$out: gencode now checks the runtime version ($(grep -m1 'Protobuf Python Version' "$out"));" \
        "raise the protobuf lower bound in pyproject.toml to match, or pin an older grpcio-tools" >&2
    exit 1
fi
echo "regenerated $out and ${out}i ($(grep -m1 'Protobuf Python Version' "$out" | sed 's/^# //'))"
