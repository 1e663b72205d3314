#!/usr/bin/env bash
# Build the benchmark's HTTP load generator (bench/loadgen, Go) into <repo>/.tools/bin/careledger-loadgen
# and print the binary's path.
#
# Usage: scripts/build-loadgen.sh
#
# The binary is reused while .tools/bin/careledger-loadgen.version matches the SHA-256 of the
# generator's sources (go.mod, go.sum, *.go) and the Go version. The module's dependencies are pinned
# by bench/loadgen/go.sum; they come from the Go module cache when present (so a second build works
# offline; GOFLAGS=-mod=mod GOPROXY=off forces that), else from the Go module proxy (GOPROXY).
# Needs a Go toolchain (go >= 1.26, as bench/loadgen/go.mod says).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${repo_root}/bench/loadgen"
bin_dir="${repo_root}/.tools/bin"
binary="${bin_dir}/careledger-loadgen"
stamp="${binary}.version"

if ! command -v go >/dev/null 2>&1; then
    if [[ -x "${binary}" ]]; then  # built before; no toolchain to check it against
        echo "${binary}"
        exit 0
    fi
    echo "build-loadgen: the Go toolchain ('go') is not on PATH" >&2
    exit 1
fi

want="$( (cd "${src}" && cat go.mod go.sum $(ls ./*.go | grep -v '_test\.go$' | sort) && go version) | sha256sum | cut -d' ' -f1)"
if [[ -x "${binary}" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
    echo "${binary}"
    exit 0
fi

mkdir -p "${bin_dir}"
echo "build-loadgen: building careledger-loadgen with $(go version)" >&2
rm -f "${stamp}"
if ! (cd "${src}" && CGO_ENABLED=0 go build -trimpath -o "${binary}.tmp.$$" .) >&2; then
    echo "build-loadgen: 'go build' of bench/loadgen failed" >&2
    rm -f "${binary}.tmp.$$"
    exit 1
fi
mv -f "${binary}.tmp.$$" "${binary}"
echo "${want}" > "${stamp}.$$" && mv -f "${stamp}.$$" "${stamp}"
echo "${binary}"
