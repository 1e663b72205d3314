#!/usr/bin/env bash
# Regenerate src/careledger/abci/abci_pb2.py (+ .pyi) from src/careledger/abci/abci.proto.
#
# grpcio-tools (which bundles protoc) is needed only here, never at run time; it is installed into
# a private virtualenv under .tools/ so the project's environment is left alone. The generated
# modules are committed; the runtime needs only the `protobuf` package, at a version at least as
# new as the protoc that generated the code.
set -euo pipefail

GRPCIO_TOOLS_VERSION="${GRPCIO_TOOLS_VERSION:-1.85.1}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.tools/gen-abci-venv"
out="${repo_root}/src/careledger/abci"
python="${PYTHON:-python3}"

if [[ ! -x "${venv}/bin/python" ]]; then
    "${python}" -m venv "${venv}"
fi
if ! "${venv}/bin/python" -c "import grpc_tools" 2>/dev/null \
   || [[ "$("${venv}/bin/python" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))')" \
         != "${GRPCIO_TOOLS_VERSION}" ]]; then
    "${venv}/bin/pip" install --quiet "grpcio-tools==${GRPCIO_TOOLS_VERSION}"
fi

cd "${out}"
"${venv}/bin/python" -m grpc_tools.protoc --proto_path=. --python_out=. --pyi_out=. abci.proto
# Generated code follows protoc's style, not ours: keep the linter out of it.
for f in abci_pb2.py abci_pb2.pyi; do
    printf "# ruff: noqa\n# mypy: ignore-errors\n%s\n" "$(cat "${f}")" > "${f}"
done
echo "generated ${out}/abci_pb2.py and abci_pb2.pyi with $("${venv}/bin/python" -m grpc_tools.protoc --version)"
