#!/usr/bin/env bash
# Install the pinned CometBFT release into <repo>/.tools/bin and print the binary's path.
# Also installs the same release's abci-cli (CometBFT's example apps), whose kvstore, run out of
# process, is a baseline of `careledger bench --engine cometbft`.
#
# Usage: scripts/install-cometbft.sh            # build (or reuse) and print the path
#        COMETBFT_VERSION=v0.38.25 scripts/install-cometbft.sh
#
# The binary is reused when `cometbft version` already reports the pinned version (abci-cli when
# .tools/bin/abci-cli.version names it: `abci-cli version` reports the ABCI protocol's version).
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

abci_cli="${bin_dir}/abci-cli"
abci_cli_stamp="${bin_dir}/abci-cli.version"
abci_cli_current() {
    [[ -x "${abci_cli}" && -f "${abci_cli_stamp}" && "$(cat "${abci_cli_stamp}")" == "${want}" ]]
}

if [[ -x "${binary}" && "$(installed_version)" == "${want}" ]] && abci_cli_current; then
    echo "${binary}"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "install-cometbft: the Go toolchain ('go') is not on PATH" >&2
    exit 1
fi

mkdir -p "${bin_dir}"
start="$(date +%s)"
if [[ ! -x "${binary}" || "$(installed_version)" != "${want}" ]]; then
    echo "install-cometbft: building cometbft ${COMETBFT_VERSION} with $(go version)" >&2
    if ! GOBIN="${bin_dir}" go install "github.com/cometbft/cometbft/cmd/cometbft@${COMETBFT_VERSION}" >&2; then
        echo "install-cometbft: 'go install' of cometbft ${COMETBFT_VERSION} failed" >&2
        exit 1
    fi
fi
if ! abci_cli_current; then
    echo "install-cometbft: building abci-cli ${COMETBFT_VERSION}" >&2
    rm -f "${abci_cli_stamp}"
    if ! GOBIN="${bin_dir}" go install "github.com/cometbft/cometbft/abci/cmd/abci-cli@${COMETBFT_VERSION}" >&2; then
        echo "install-cometbft: 'go install' of abci-cli ${COMETBFT_VERSION} failed" >&2
        exit 1
    fi
    echo "${want}" > "${abci_cli_stamp}"
fi
echo "install-cometbft: built in $(( $(date +%s) - start ))s" >&2

got="$(installed_version)"
if [[ "${got}" != "${want}" ]]; then
    echo "install-cometbft: ${binary} reports version '${got}', expected '${want}'" >&2
    exit 1
fi
echo "${binary}"
