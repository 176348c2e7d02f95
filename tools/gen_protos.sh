#!/usr/bin/env bash
# Regenerate the typed protobuf modules (*_pb2.py + *_pb2.pyi) from every .proto in the packages.
# Needs the dev extra (grpcio-tools, mypy-protobuf). Generated files are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
plugin=$(dirname "$py")/protoc-gen-mypy
find p2pstack transports protocols -name '*.proto' -print0 | while IFS= read -r -d '' proto; do
    dir=$(dirname "$proto")
    "$py" -m grpc_tools.protoc -I"$dir" --python_out="$dir" \
        --plugin=protoc-gen-mypy="$plugin" --mypy_out="$dir" "$proto"
    echo "generated $proto"
done
