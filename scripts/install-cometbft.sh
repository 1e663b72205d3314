#!/usr/bin/env bash
# Install the pinned CometBFT release into <repo>/.tools/bin and print the binary's path.
#
# Usage: scripts/install-cometbft.sh            # build (or reuse) and print the path
#        COMETBFT_VERSION=v0.38.25 scripts/install-cometbft.sh
#
# The binary is reused when `cometbft version` already reports the pinned version.
# Needs a Go toolchain (go >= 1.22) and access to the Go module proxy.
set -euo pipefail

# Newest v0.38.x patch release (checked with `go list -m -versions github.com/cometbft/cometbft`).
COMETBFT_VERSION="${COMETBFT_VERSION:-v0.38.26}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${repo_root}/.tools/bin"
binary="${bin_dir}/cometbft"
want="${COMETBFT_VERSION#v}"

installed_version() {
    # `cometbft version` prints e.g. "0.38.26" (older releases may add "+<commit>").
    "${binary}" version 2>/dev/null | head -n 1 | sed -e 's/^v//' -e 's/+.*$//' || true
}

if [[ -x "${binary}" && "$(installed_version)" == "${want}" ]]; then
    echo "${binary}"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "install-cometbft: the Go toolchain ('go') is not on PATH" >&2
    exit 1
fi

mkdir -p "${bin_dir}"
echo "install-cometbft: building cometbft ${COMETBFT_VERSION} with $(go version)" >&2
start="$(date +%s)"
if ! GOBIN="${bin_dir}" go install "github.com/cometbft/cometbft/cmd/cometbft@${COMETBFT_VERSION}" >&2; then
    echo "install-cometbft: 'go install' of cometbft ${COMETBFT_VERSION} failed" >&2
    exit 1
fi
echo "install-cometbft: built in $(( $(date +%s) - start ))s" >&2

got="$(installed_version)"
if [[ "${got}" != "${want}" ]]; then
    echo "install-cometbft: ${binary} reports version '${got}', expected '${want}'" >&2
    exit 1
fi
echo "${binary}"
