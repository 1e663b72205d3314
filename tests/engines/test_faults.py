"""Fault tests on a real 4-validator CometBFT network on loopback, under load through the HTTP API.

1. The fault matrix (:mod:`careledger.net.faults`, its short plan: about 1.5 minutes): rolling
   SIGKILLs of one validator at a time, one validator paused (SIGSTOP/SIGCONT), one node's CometBFT
   killed under its live API (which must say so: not ready, submissions refused 503
   NODE_UNAVAILABLE), 2 of 4 killed (no block may commit) and restarted; then 0 acknowledged
   transactions lost, the same ledger blocks and CometBFT block and app hashes at every height on
   every node, and every restarted node caught up. Where network namespaces can be made (root,
   ``ip netns``), the nodes run in namespaces of their own and one validator is partitioned too.
   ``make faults`` runs the 10-minute plan.
2. On the same network afterwards: a committed transaction replayed through another node is refused;
   a node whose application state was tampered with (a nonce rewritten, row checksum fixed so the
   store's own check passes) computes another app hash for the next block holding that signer's
   transaction: CometBFT stops it with an app-hash mismatch, and the others go on, in agreement.

Acknowledged = the API returned ``status: committed`` with receipt code 0. Submissions that time out
or fail while validators are down are *unknown* (as in Jepsen's set workload) and are not counted as
lost; they may or may not commit later.

Needs the cometbft binary; skipped without it, except under CI=true where it fails.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from careledger.client import ClientError
from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.net.cluster import LocalNetwork
from careledger.net.faults import FaultPlan, compare_nodes, run_fault_matrix
from careledger.net.layout import Tuning
from careledger.net.netns import Namespaces
from careledger.net.netns import available as netns_available
from careledger.node.store import state_chk
from support import require_cometbft

pytestmark = pytest.mark.cometbft


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    require_cometbft()
    namespaces = Namespaces.fresh() if netns_available() == "" else None  # for the partition phase
    network = LocalNetwork.create(tmp_path_factory.mktemp("faults") / "net", 4, chain_id="careledger-faults",
                                  tuning=Tuning(timeout_commit="200ms"), namespaces=namespaces)
    try:
        network.start()
        network.wait_api()
        yield network
    finally:
        network.stop()


def heights(net: LocalNetwork, nodes: list[int]) -> list[int]:
    return [net.height(i) or 0 for i in nodes]


def assert_agreement(net: LocalNetwork, nodes: list[int]) -> None:
    compared = compare_nodes(net, nodes)
    assert compared.ledger_heights > 0 and compared.cometbft_heights > 0
    assert compared.divergent_ledger == [] and compared.divergent_cometbft == []


def test_fault_matrix(net: LocalNetwork) -> None:
    started = time.monotonic()
    report = run_fault_matrix(net, FaultPlan.short(), progress=lambda m: print(f"fault matrix: {m}", flush=True),
                              partition=net.partitioner)
    print(json.dumps(report.to_json(), indent=1))
    assert report.acknowledged >= 100
    assert report.lost == 0 and report.misplaced == 0
    assert report.divergent_ledger_heights == [] and report.divergent_cometbft_heights == []
    assert report.ledger_heights_compared >= 10 and report.cometbft_heights_compared >= 10
    quorum = next(p for p in report.phases if p.name == "quorum loss")
    assert quorum.blocks == 0, "blocks committed while 2 of 4 validators were down"
    assert len(quorum.catch_up_s) == 2
    partitioned = net.partitioner is not None
    assert report.partition == ("ran" if partitioned else "not run")
    # every restarted, resumed or reconnected node caught up
    assert len(report.catch_up_s) == FaultPlan.short().rolling_kills + 4 + partitioned
    dead = report.dead_cometbft
    assert dead["status_ready"] is False and dead["status_engine"] == "halted" and "CometBFT" in dead["status_reason"]
    assert dead["submit_refused"] == "NODE_UNAVAILABLE" and dead["submit_http_status"] == 503
    assert report.longest_stall_s >= FaultPlan.short().quorum_loss_s  # the quorum loss is a stall, by design
    # liveness, not speed: with 3 of 4 up the network moves on. A bound, not a figure: on a loaded
    # 2-core machine running two test workers a round change after a kill has taken 25 s.
    assert report.longest_stall_with_quorum_s < 60
    assert report.ok
    assert time.monotonic() - started < 300


def test_replay_refused_and_tampered_state_caught(net: LocalNetwork) -> None:
    acked = {r["tx_hash"]: r for r in (net.client(i % 4).send(SigningKey.generate(), "identity.register_patient", 1,
                                                              {}, wait=True) for i in range(4))}
    assert all(r["receipt"]["code"] == 0 for r in acked.values())
    # a committed transaction replayed through another node is refused
    some_tx = next(iter(acked))
    raw = bytes.fromhex(net.client(0).tx(some_tx)["proof"]["tx"])
    for i in (1, 3):
        with pytest.raises(ClientError) as refused:
            net.client(i).submit(raw, wait=True, timeout=10)
        assert refused.value.name in {"DUPLICATE_TX", "NONCE_REPLAYED"}

    # tamper with node3's state: another app hash, caught by CometBFT, the others unaffected
    admin, org = net.spec.admin_key(0), net.spec.nodes[0].org

    def enrol() -> dict[str, Any]:
        return net.client(0).send(admin, "identity.enrol_member", 1, {
            "member": SigningKey.generate().public_hex, "org": org, "roles": ["physician"]}, wait=True)

    first = enrol()
    net.wait("node3 to hold the enrolment", lambda: first["tx_hash"] in net.ledger_txs(3))
    net.kill(3)
    conn = sqlite3.connect(net.spec.db_path(3))
    key, forged = f"nonce/{admin.public_hex}", codec.encode(7)
    assert conn.execute("UPDATE state SET value = ?, chk = ? WHERE key = ?",
                        (forged, state_chk(key, forged), key)).rowcount == 1
    conn.commit()
    conn.close()
    net.start(3)
    net.wait_height(max(heights(net, [0, 1, 2])), [3], timeout=60)
    again = enrol()  # valid everywhere but on node3, which believes the admin's nonce is 7
    assert again["receipt"]["code"] == 0
    for _ in range(3):
        net.client(1).send(SigningKey.generate(), "identity.register_patient", 1, {}, wait=True)
    cmt_log = (net.spec.node_dir(3) / "logs" / "cometbft.log")
    net.wait("node3's CometBFT to refuse the other nodes' app hash",
             lambda: "wrong Block.Header.AppHash" in cmt_log.read_text(errors="replace"), timeout=60)
    assert again["tx_hash"] not in net.ledger_txs(3)  # node3 found it invalid and executed nothing
    later = net.client(2).send(SigningKey.generate(), "identity.register_patient", 1, {}, wait=True)
    net.wait("nodes 0-2 to commit on", lambda: all(later["tx_hash"] in net.ledger_txs(i) for i in range(3)))
    assert_agreement(net, [0, 1, 2])
