"""``careledger net``: a local 4-organisation consortium on real CometBFT processes, on loopback.

* the layout ``net init`` writes: one genesis (byte-identical CometBFT genesis on every node, whose
  validators are the CareLedger genesis validators), peers, tuned config, pre-initialised ledgers;
* the CLI round trip (init, start, status, stop);
* transactions submitted through any node's HTTP API commit everywhere with the same receipt;
* validator changes through the governance contract: a fifth organisation's node becomes a
  validator and signs blocks, then one validator is removed, as CometBFT applies updates (H+2).

Needs the cometbft binary (scripts/install-cometbft.sh); skipped without it, except under CI=true.
"""

from __future__ import annotations

import base64
import json
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.abci.cometbft import validator_address
from careledger.client import Client
from careledger.core.crypto import SigningKey
from careledger.net.cluster import LocalNetwork, free_base_port
from careledger.net.layout import Tuning, add_node
from support import require_cometbft
from support.cli import run_cli

pytestmark = pytest.mark.cometbft


@pytest.fixture(scope="module", autouse=True)
def cometbft_binary() -> Path:
    return require_cometbft()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork.create(tmp_path_factory.mktemp("net") / "net", 4, chain_id="careledger-nettest",
                                  tuning=Tuning(timeout_commit="150ms"))
    try:
        network.start()
        network.wait_api()
        network.wait_height(1)
        yield network
    finally:
        network.stop()


def send(client: Client, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    result = client.send(key, tx_type, 1, payload, wait=True)
    assert result["status"] == "committed", result
    return result


def vote_through(net: LocalNetwork, orgs: list[int], proposal: str) -> str:
    status = "open"
    for i in orgs:
        out = send(net.client(i), net.spec.admin_key(i), "governance.vote", {"approve": True, "proposal": proposal})
        assert out["receipt"]["code"] == 0, out
        status = out["receipt"]["result"]["status"]
    return status


def cometbft_validators(net: LocalNetwork, i: int) -> dict[str, int]:
    res = net.rpc(i, "validators", height=str(net.height(i)), per_page="100")
    return {base64.b64decode(v["pub_key"]["value"]).hex(): int(v["voting_power"]) for v in res["validators"]}


def test_layout_has_one_genesis_and_validators_that_are_cometbft_keys(net: LocalNetwork) -> None:
    spec = net.spec
    genesis = spec.genesis()
    texts = {(spec.cometbft_home(n) / "config" / "genesis.json").read_text() for n in spec.nodes}
    assert len(texts) == 1  # byte-identical on every node, genesis time included
    cmt = json.loads(texts.pop())
    assert cmt["chain_id"] == genesis.chain_id and cmt["app_state"] == genesis.to_json()
    assert [v.pub_key for v in genesis.validators] == [n.validator for n in spec.nodes]
    assert [o.roles[0] for o in genesis.organisations] == ["hospital", "clinic", "pharmacy", "manufacturer"]
    for node in spec.nodes:
        config = tomllib.loads((spec.cometbft_home(node) / "config" / "config.toml").read_text())
        peers = config["p2p"]["persistent_peers"].split(",")
        assert len(peers) == 3 and all("@127.0.0.1:" in p for p in peers) and node.node_id not in config["p2p"][
            "persistent_peers"]
        assert config["proxy_app"] == node.abci and config["consensus"]["create_empty_blocks"] is False
        # CometBFT reaches the app on the node's own socket, which only its owner can open
        sock = node.abci_socket
        assert sock is not None and stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        # CometBFT's metrics on a port of each node's own, and its indexer on
        assert config["instrumentation"]["prometheus"] is True
        assert config["instrumentation"]["prometheus_listen_addr"] == node.metrics
        assert config["tx_index"]["indexer"] == "kv"
        assert json.loads((spec.careledger_home(node) / "config.json").read_text())["engine"] == "cometbft"
        assert not (spec.careledger_home(node) / "vault").exists()  # `careledger records vault-init` makes one
    assert cometbft_validators(net, 0) == {n.validator: 10 for n in spec.nodes}
    assert len({n.metrics for n in spec.nodes}) == len(spec.nodes)
    for node in spec.nodes:
        assert "cometbft_consensus_height" in httpx.get(node.metrics_url, timeout=5).text


def test_a_tx_through_any_node_commits_everywhere_and_a_replay_elsewhere_is_refused(net: LocalNetwork) -> None:
    from careledger.client import ClientError

    results = []
    for i in range(4):
        patient = SigningKey.generate()
        results.append(send(net.client(i), patient, "identity.register_patient", {}))
    net.wait("every node to hold the four registrations",
             lambda: all(all(r["tx_hash"] in net.ledger_txs(i) for r in results) for i in range(4)))
    for r in results:
        views = [net.client(i).tx(r["tx_hash"]) for i in range(4)]
        assert {v["height"] for v in views} == {r["height"]}
        assert all(v["receipt"] == views[0]["receipt"] for v in views) and views[0]["receipt"]["code"] == 0
    raw = bytes.fromhex(net.client(0).tx(results[0]["tx_hash"])["proof"]["tx"])
    for i in (1, 3):
        with pytest.raises(ClientError) as refused:
            net.client(i).submit(raw, wait=True)
        assert refused.value.name == "DUPLICATE_TX"
    status = net.client(2).status()
    assert status["engine"] == "cometbft" and status["cometbft_height"] >= status["height"] >= 4
    # CometBFT's indexer finds them by their events (tx_search)
    found = net.rpc(1, "tx_search", query="careledger_tx.type='identity.register_patient'", per_page="100")
    hashes = {str(t["hash"]).lower() for t in found["txs"]}
    assert {r["tx_hash"] for r in results} <= hashes


def test_cli_init_start_status_stop(tmp_path: Path) -> None:
    home = tmp_path / "cli-net"
    base = free_base_port(2)
    out = run_cli("net", "init", "--home", str(home), "--validators", "2", "--base-port", str(base))
    assert out.exit_code == 0, out.output
    try:
        out = run_cli("net", "start", "--home", str(home))
        assert out.exit_code == 0 and "node0, node1" in out.output, out.output
        network = LocalNetwork(__import__("careledger.net.layout", fromlist=["NetworkSpec"]).NetworkSpec.load(home))
        network.wait_height(1)
        out = run_cli("net", "status", "--home", str(home), "--json")
        doc = json.loads(out.stdout)
        assert [d["name"] for d in doc] == ["node0", "node1"] and all(d["peers"] == 1 for d in doc)
        assert all(d["ledger_height"] == 0 and d["height"] >= 1 for d in doc)
    finally:
        out = run_cli("net", "stop", "--home", str(home))
    assert out.exit_code == 0 and "node0" in out.output
    doc = json.loads(run_cli("net", "status", "--home", str(home), "--json").stdout)
    assert all(v is None for d in doc for v in d["running"].values())


def test_governance_adds_a_fifth_validator_then_removes_one(net: LocalNetwork) -> None:
    spec = add_node(net.spec, "insurer-4", "insurer", Tuning(timeout_commit="150ms"))
    net.spec = spec
    net.start(4)
    newcomer = spec.nodes[4]
    new_admin = spec.admin_key(4)
    # 1. admit the insurer (3 of 4 organisations: more than 2/3)
    proposal = send(net.client(0), spec.admin_key(0), "governance.propose", {
        "action": {"kind": "add_organisation", "organisation": {
            "admins": [new_admin.public_hex], "id": "insurer-4", "name": "Insurer 4", "roles": ["insurer"]}},
        "title": "admit insurer 4"})["receipt"]["result"]["proposal"]
    assert vote_through(net, [1, 2], proposal) == "executed"
    # 2. its node's key becomes a validator (4 of 5 organisations)
    proposal = send(net.client(1), spec.admin_key(1), "governance.propose", {
        "action": {"kind": "set_validator", "org": "insurer-4", "pub_key": newcomer.validator, "power": 10},
        "title": "insurer 4 validates"})["receipt"]["result"]["proposal"]
    assert vote_through(net, [0, 2], proposal) == "open"
    executed = send(net.client(0), new_admin, "governance.vote", {"approve": True, "proposal": proposal})
    assert executed["receipt"]["result"]["status"] == "executed"
    events = [e["type"] for e in executed["receipt"]["events"]]
    assert "validator_update" in events
    # CometBFT applies an update decided at H from H+2: drive blocks and watch the set grow
    net.wait("CometBFT's validator set to include the fifth node", lambda: (
        bool(send(net.client(0), SigningKey.generate(), "identity.register_patient", {}))
        and cometbft_validators(net, 0).get(newcomer.validator) == 10), timeout=60, every=0.1)
    assert len(cometbft_validators(net, 2)) == 5
    assert {v["pub_key"] for v in net.client(3).validators()} == {n.validator for n in spec.nodes}
    address = validator_address(bytes.fromhex(newcomer.validator)).hex().upper()

    def signed_by_newcomer() -> bool:
        send(net.client(2), SigningKey.generate(), "identity.register_patient", {})
        height = net.height(0) or 0
        sigs = net.rpc(0, "commit", height=str(height))["signed_header"]["commit"]["signatures"]
        return any(s.get("validator_address") == address for s in sigs)

    net.wait("the fifth validator to sign a commit", signed_by_newcomer, timeout=60, every=0.1)
    # 3. remove the manufacturer's validator (4 of 5 organisations)
    proposal = send(net.client(0), spec.admin_key(0), "governance.propose", {
        "action": {"kind": "set_validator", "org": spec.nodes[3].org, "pub_key": spec.nodes[3].validator,
                   "power": 0}, "title": "manufacturer 3 stops validating"})["receipt"]["result"]["proposal"]
    assert vote_through(net, [1, 2, 4], proposal) == "executed"
    net.wait("CometBFT's validator set to drop node3", lambda: (
        bool(send(net.client(1), SigningKey.generate(), "identity.register_patient", {}))
        and spec.nodes[3].validator not in cometbft_validators(net, 0)), timeout=60, every=0.1)
    assert set(cometbft_validators(net, 4)) == {n.validator for n in spec.nodes if n.index != 3}
    # the network goes on, node3 follows as a full node, and everyone agrees block for block
    last = send(net.client(3), SigningKey.generate(), "identity.register_patient", {})
    net.wait("all five ledgers to reach the last block",
             lambda: all(last["tx_hash"] in net.ledger_txs(i) for i in range(5)))
    blocks = [net.ledger_blocks(i)[:last["height"]] for i in range(5)]
    assert all(b == blocks[0] for b in blocks) and len(blocks[0]) == last["height"]


def test_verify_and_proofs_accept_cometbft_blocks_and_nothing_weaker(net: LocalNetwork) -> None:
    from careledger.core.proofs import ProofInvalid, cometbft_address, verify_proof
    from careledger.node.store import Store
    from careledger.node.verify import verify_store

    done = send(net.client(1), SigningKey.generate(), "identity.register_patient", {})
    net.wait("node0 to hold the registration", lambda: done["tx_hash"] in net.ledger_txs(0))
    store = Store(net.spec.db_path(0))
    try:
        report = verify_store(store, engine="cometbft")  # replays every block; proposers are CometBFT addresses
    finally:
        store.close()
    assert report.ok, report.problem
    assert report.blocks >= done["height"]
    proof = net.client(0).tx(done["tx_hash"])["proof"]
    genesis = net.spec.genesis()
    # the validators as they stand now (the governance test added one): the client passes them explicitly
    keys = sorted({v.pub_key for v in genesis.validators} | {v["pub_key"] for v in net.client(0).validators()})
    assert proof["block_signature"] == "" and proof["header"]["proposer"] in {cometbft_address(k) for k in keys}
    receipt = verify_proof(proof, genesis.chain_id, keys, engine="cometbft")
    assert receipt.tx == done["tx_hash"]
    with pytest.raises(ProofInvalid):  # the solo engine's rule never accepts an unsigned header
        verify_proof(proof, genesis.chain_id, keys)
    forged = {**proof, "header": {**proof["header"], "proposer": "00" * 20}}
    with pytest.raises(ProofInvalid, match="CometBFT address"):
        verify_proof(forged, genesis.chain_id, keys, engine="cometbft")
