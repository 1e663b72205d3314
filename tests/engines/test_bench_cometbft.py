"""`careledger bench --engine cometbft` in miniature: the three networks start, take the same load and
report figures counted from their blocks (one validator each, a few hundred transactions).

Needs cometbft and abci-cli (scripts/install-cometbft.sh); skipped without them, except under CI=true.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from careledger.abci.cometbft import CometbftSetupError
from careledger.bench.cometbft import bench_cometbft
from careledger.net.layout import init_network
from careledger.net.procs import NetError, start_nodes
from support import require_abci_cli, require_cometbft

pytestmark = pytest.mark.cometbft


@pytest.fixture(scope="module", autouse=True)
def binaries() -> None:
    require_cometbft()
    require_abci_cli()


def test_bench_drives_careledger_and_both_kvstores_with_the_same_load(tmp_path: Path) -> None:
    steps: list[str] = []
    result = bench_cometbft(validators=1, peak_txs=300, seconds=2, latency_rate=100, home=tmp_path,
                            progress=steps.append)
    assert result["broadcast"] == "broadcast_tx_async"
    for net in ("careledger", "kvstore", "kvstore_socket"):
        peak, paced = result[net]["peak"], result[net]["paced"]
        assert peak["sent"] == 300 and peak["committed"] == 300, (net, peak)  # counted from the blocks
        assert paced["committed"] == paced["sent"] == 200, (net, paced)
        assert 0 < peak["p50_ms"] <= peak["p99_ms"] and peak["tx_per_s"] > 0 and peak["sent_per_s"] > 0
        assert result[net]["blocks_with_txs"] >= 1
    assert result["careledger"]["mean_tx_bytes"] == result["kvstore"]["mean_tx_bytes"] \
        == result["kvstore_socket"]["mean_tx_bytes"]
    expected = result["careledger"]["peak"]["tx_per_s"] / result["kvstore"]["peak"]["tx_per_s"]
    assert result["ratio_peak_tx_per_s"] == pytest.approx(expected, abs=0.001)
    assert set(result["targets"]) == {"ratio_ge_0.7", "careledger_ge_1000_tx_per_s", "careledger_p99_le_3000_ms"}
    assert any("kvstore-socket" in step for step in steps)


def test_a_network_of_an_unknown_app_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CometbftSetupError, match="unknown app"):
        init_network(tmp_path / "n", 1, proxy_app="nginx")


def test_a_kvstore_socket_network_needs_abci_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = init_network(tmp_path / "n", 1, base_port=27_700, proxy_app="kvstore-socket")
    monkeypatch.setattr("careledger.net.procs.find_abci_cli", lambda: None)
    with pytest.raises(NetError, match="abci-cli not found"):
        start_nodes(spec)
