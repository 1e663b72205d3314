"""``careledger demo --engine cometbft``: the whole demo story on a local 4-validator CometBFT network.

Every chapter (identity, refusals, governance, revocation, proofs of CometBFT blocks, and the
records and supply chapters as they land) goes through node0's HTTP API; the demo then verifies
every node's ledger from genesis and compares them block for block, and stops the network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from careledger.net.layout import NetworkSpec
from careledger.net.procs import running_pid
from support import require_cometbft
from support.cli import run_cli

pytestmark = pytest.mark.cometbft


def test_demo_runs_on_a_four_validator_network(tmp_path: Path) -> None:
    require_cometbft()
    home = tmp_path / "net"
    out = run_cli("demo", "--engine", "cometbft", "--home", str(home))
    assert out.exit_code == 0, out.output[-3000:]
    assert "4 ledgers intact and identical" in out.output
    assert "proof valid" in out.output  # the proof of a CometBFT block (engine="cometbft")
    spec = NetworkSpec.load(home)
    assert [n.org for n in spec.nodes] == ["st-marys", "riverside-clinic", "high-street-pharmacy", "acme-pharma"]
    assert all(running_pid(spec, n, p) is None for n in spec.nodes for p in ("careledger", "cometbft"))
