#!/usr/bin/env bash
# Install the Hardhat peer's npm dev dependencies (hardhat, ethers, solc; pinned by package-lock.json)
# into bench/peers/hardhat/node_modules, once: `careledger bench --via http` runs this on first use.
# Reuses node_modules while it matches package-lock.json. Needs Node.js >= 18 and npm.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${here}"
if ! command -v npm >/dev/null 2>&1; then
    echo "hardhat peer: npm is not on PATH (install Node.js >= 18)" >&2
    exit 1
fi
if [[ -f node_modules/.package-lock.json && node_modules/.package-lock.json -nt package-lock.json \
      && -d node_modules/hardhat && -d node_modules/ethers && -d node_modules/solc ]]; then
    exit 0
fi
echo "hardhat peer: installing its npm dev dependencies into ${here}/node_modules" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
touch node_modules/.package-lock.json
