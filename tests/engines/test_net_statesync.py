"""On a real 4-validator network (ABCI over loopback TCP, as asked for here), under load:

* the attack of issue 16's fault table, replayed: a second local client on a validator's ABCI port
  sends well-formed FinalizeBlock and Commit. The server refuses the connection (CometBFT holds all
  four), the app commits nothing, the validator keeps committing with the others, and it restarts
  cleanly afterwards (before, it could not: "app block height is higher than core");
* a 5th node joins by state sync: its CometBFT fetches a snapshot from its peers (every node takes one
  every 10 CometBFT heights), its app re-executes the snapshot's blocks and is swapped in at the app
  hash CometBFT's light client verified, then it follows the chain. Its block store starts at the
  snapshot (no replay from genesis), and its ledger and app hashes equal the others'.

The figures (heights, app hashes, seconds) are printed for the issue's closing note.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from collections.abc import Iterator

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from careledger.abci import abci_pb2 as pb
from careledger.abci.wire import frame
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.net.cluster import LocalNetwork
from careledger.net.faults import Load, compare_nodes
from careledger.net.layout import Tuning
from support import require_cometbft

pytestmark = pytest.mark.cometbft

SNAPSHOT_INTERVAL = 10
SNAPSHOT_KEEP = 10  # at about 3 heights a second under this load, a snapshot lives about 30 s


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    require_cometbft()
    network = LocalNetwork.create(tmp_path_factory.mktemp("statesync") / "net", 4, chain_id="careledger-statesync",
                                  tuning=Tuning(timeout_commit="200ms"), abci_transport="tcp",
                                  snapshot_interval=SNAPSHOT_INTERVAL, snapshot_keep=SNAPSHOT_KEEP)
    try:
        network.start()
        network.wait_api()
        yield network
    finally:
        network.stop()


def intrude(net: LocalNetwork, i: int) -> bytes:
    """Connect to node ``i``'s ABCI port and send a FinalizeBlock for the next height and a Commit;
    returns whatever the server answered before closing."""
    node = net.spec.nodes[i]
    height = (net.height(i) or 0) + 1
    forged = sign_tx(SigningKey.generate(), net.spec.chain_id, "identity.register_patient", 1, 1, {})
    requests = [pb.Request(finalize_block=pb.FinalizeBlockRequest(
        txs=[forged], height=height, time=Timestamp(seconds=int(time.time())),
        hash=hashlib.sha256(b"forged").digest(), proposer_address=bytes.fromhex(node.validator)[:20])),
        pb.Request(commit=pb.CommitRequest())]
    with socket.create_connection(("127.0.0.1", node.abci_port), timeout=5) as sock:
        try:
            sock.sendall(b"".join(frame(r) for r in requests))
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
    return answer


def test_a_second_client_on_the_abci_port_cannot_drive_the_validator(net: LocalNetwork) -> None:
    with Load(net, threads=2) as load:
        net.wait("some load to commit", lambda: load.count() >= 10, 60)
        for _ in range(3):
            assert intrude(net, 1) == b""  # closed at once: CometBFT holds the four connections
        log = (net.spec.node_dir(1) / "logs" / "careledger.log").read_text()
        assert "refusing an ABCI connection" in log
        before = net.height(1) or 0
        acked = load.count()
        net.wait("node1 to keep committing", lambda: (net.height(1) or 0) >= before + 5 and load.count() > acked + 10,
                 60)
        # and it restarts cleanly: its app is not ahead of its CometBFT
        net.kill(1)
        load.set_live({0, 2, 3})
        net.start(1)
        target = max(net.height(i) or 0 for i in (0, 2, 3))
        net.wait_height(target, [1], timeout=90)
        load.set_live({0, 1, 2, 3})
        net.wait("load to commit through node1 again", lambda: load.count() > acked + 30, 60)
    cometbft_log = (net.spec.node_dir(1) / "logs" / "cometbft.log").read_text()
    assert "app block height is higher than core" not in cometbft_log and "CONSENSUS FAILURE" not in cometbft_log
    compared = compare_nodes(net)
    assert compared.divergent_ledger == [] and compared.divergent_cometbft == []


def test_a_fifth_node_joins_by_state_sync(net: LocalNetwork) -> None:
    with Load(net, threads=2):
        net.wait(f"height {2 * SNAPSHOT_INTERVAL}", lambda: (net.height(0) or 0) >= 2 * SNAPSHOT_INTERVAL, 90)
        net.wait("a snapshot at node0",
                 lambda: any(p.name.isdigit() for p in (net.spec.db_path(0).parent / "snapshots").glob("*")), 30)
        tuning = Tuning(timeout_commit="200ms", log_level="*:error,statesync:info,blocksync:info,main:info")
        new = net.add_node("hospital-5", "hospital", state_sync=True, tuning=tuning,
                           snapshot_interval=SNAPSHOT_INTERVAL)
        started = time.monotonic()
        net.start(new)
        def caught_up() -> bool:  # within a second of blocks of the network, which moves on under the load
            network = max(net.height(i) or 0 for i in range(4))
            return (net.height(new) or 0) >= network - 3

        net.wait("node4 to catch up", caught_up, 120)
        joined_s = time.monotonic() - started
        net.wait_api([new])
    top = max(net.height(i) or 0 for i in range(4))
    net.wait_height(top, [new], timeout=60)
    earliest = net.earliest_height(new)
    assert earliest > 1, "node4 replayed from genesis instead of state-syncing"
    app_log = (net.spec.node_dir(new) / "logs" / "careledger.log").read_text()
    restored = re.search(r"state sync restored the ledger at CometBFT height (\d+): ledger height (\d+), app hash "
                         r"(\w+) \((\d+) blocks", app_log)
    assert restored is not None, app_log[-3000:]
    # the same ledger as everyone, and the same app hash at the same height
    compared = compare_nodes(net)
    assert compared.divergent_ledger == [] and compared.divergent_cometbft == []
    statuses = [net.client(i).status() for i in range(5)]
    height = min(s["height"] for s in statuses)
    hashes = {net.client(i).block(height)["header"]["app_hash"] for i in range(5)}
    assert len(hashes) == 1
    figures = {"node": "node4", "restored_at_cometbft_height": int(restored.group(1)),
               "restored_ledger_height": int(restored.group(2)), "restored_app_hash": restored.group(3),
               "blocks_re_executed": int(restored.group(4)),
               "earliest_block_in_its_cometbft_store": earliest, "joined_in_s": round(joined_s, 1),
               "ledger_height_compared": height, "app_hash": hashes.pop(),
               "ledger_heights_compared": compared.ledger_heights,
               "cometbft_heights_compared": compared.cometbft_heights,
               "heights": {f"node{i}": [s["height"], s["cometbft_height"]] for i, s in enumerate(statuses)}}
    print(json.dumps(figures, indent=1))
