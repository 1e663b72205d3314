"""The Python client against a real node over real HTTP on loopback; error mapping through a swapped
transport where no node is needed."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import careledger.client
from careledger.api.server import BackgroundServer, serve_in_thread
from careledger.chain.registry import default_registry
from careledger.client import Client, ClientError, NodeUnavailable, ProofInvalid, transaction_of, verify_proof
from careledger.contracts.identity import compute_pseudonym
from careledger.contracts.identity.handlers import EnrolMember
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.tx import sign_tx
from careledger.node.home import Home, init_home
from careledger.node.solo import Node
from careledger.vault.requests import ViewRequest


@dataclass
class Net:
    home: Home
    node: Node
    server: BackgroundServer
    client: Client
    admin: SigningKey


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    home = init_home(tmp_path / "home", None, None, 1_700_000_000_000)
    node = home.open_node()
    node.start()
    server = serve_in_thread(node)
    client = Client(server.url, timeout=30)
    try:
        yield Net(home, node, server, client, home.key("admin"))
    finally:
        client.close()
        server.stop()
        node.close()


def enrol(member: str, roles: list[str] | None = None) -> dict[str, object]:
    return {"member": member, "org": "org.dev", "roles": roles or ["nurse"]}


def test_public_names_are_exactly_the_intended_ones() -> None:
    assert set(careledger.client.__all__) == {"Client", "ClientError", "NodeUnavailable", "ProofInvalid",
                                              "transaction_of", "verify_proof"}
    assert issubclass(NodeUnavailable, ClientError)


def test_send_commits_and_counts_nonces_locally(net: Net) -> None:
    members = [SigningKey.generate().public_hex for _ in range(4)]
    pending = [net.client.send(net.admin, "identity.enrol_member", 1, enrol(m), wait=False) for m in members[:3]]
    assert [p["status"] for p in pending] == ["pending"] * 3
    last = net.client.send(net.admin, "identity.enrol_member", 1, enrol(members[3]))
    assert last["status"] == "committed" and last["receipt"]["code"] == 0
    assert net.client.nonce(net.admin.public_hex) == {"account": net.admin.public_hex, "committed": 4,
                                                      "pending": 0, "next": 5}
    assert sorted(m["key"] for m in net.client.members("org.dev")) == sorted(members)
    nonces = [net.client.tx(p["tx_hash"])["tx"]["body"]["nonce"] for p in pending]
    assert nonces == [1, 2, 3]


def test_typed_payloads_name_their_transaction_and_send_as_built(net: Net) -> None:
    """Every committed transaction of the vectors (every registered type): its payload, read into its
    model, gives back the same type, version and payload; and a typed send commits."""
    registry = default_registry()
    seen = set()
    for path in sorted((Path(__file__).resolve().parents[1] / "vectors").rglob("*.json")):
        vector = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(vector, dict) and isinstance(vector.get("post"), dict) and "block" in vector):
            continue
        by_hash = {hashlib.sha256(wire.encode()).hexdigest(): json.loads(wire) for wire in vector["block"]["txs"]}
        for receipt in vector["post"]["receipts"]:
            body = by_hash[receipt["tx"]]["body"]
            if receipt["code"] != 0:
                continue
            model = registry.get(body["type"], body["version"]).payload.model_validate(body["payload"])
            assert transaction_of(model) == (body["type"], body["version"], body["payload"])
            seen.add(body["type"])
    assert seen == {t for t, _ in registry.kinds()}
    member = SigningKey.generate().public_hex
    result = net.client.send_payload(net.admin, EnrolMember(member=member, org="org.dev", roles=["nurse"]))
    assert result["receipt"]["code"] == 0
    assert net.client.tx(result["tx_hash"])["tx"]["body"]["payload"] == enrol(member)
    with pytest.raises(ValueError, match="not one"):
        transaction_of(ViewRequest(kind="view", patient="pt-" + "0" * 32))  # a model, but no payload


def test_send_recovers_when_the_key_also_signs_elsewhere(net: Net) -> None:
    net.client.send(net.admin, "identity.enrol_member", 1, enrol(SigningKey.generate().public_hex))
    with Client(net.server.url) as other:  # the same key, another client: the first one's count goes stale
        other.send(net.admin, "identity.enrol_member", 1, enrol(SigningKey.generate().public_hex))
    result = net.client.send(net.admin, "identity.enrol_member", 1, enrol(SigningKey.generate().public_hex))
    assert result["receipt"]["code"] == 0
    assert net.client.nonce(net.admin.public_hex)["committed"] == 3


def test_committed_failure_is_a_result_not_an_exception(net: Net) -> None:
    result = net.client.send(net.admin, "identity.enrol_member", 1,
                             enrol(SigningKey.generate().public_hex, ["inspector"]))
    assert result["status"] == "committed"
    assert (result["receipt"]["code"], result["receipt"]["name"]) == (int(Code.ROLE_NOT_ALLOWED), "ROLE_NOT_ALLOWED")


def test_refusals_raise_client_error_and_write_nothing(net: Net) -> None:
    member = SigningKey.generate()
    net.client.send(net.admin, "identity.enrol_member", 1, enrol(member.public_hex, ["physician"]))
    height = net.client.status()["height"]
    with pytest.raises(ClientError) as refused:
        net.client.send(member, "identity.enrol_member", 1, enrol(SigningKey.generate().public_hex))
    err = refused.value
    assert (err.code, err.name, err.http_status) == (int(Code.UNAUTHORISED), "UNAUTHORISED", 403)
    assert err.tx_hash is not None and len(err.tx_hash) == 64
    assert "org.dev" in err.message
    raw = sign_tx(net.admin, "another-chain", "identity.enrol_member", 1, 2, enrol("ab" * 32))
    with pytest.raises(ClientError) as wrong_chain:
        net.client.submit(raw, wait=True)
    assert (wrong_chain.value.name, wrong_chain.value.http_status) == ("WRONG_CHAIN", 401)
    assert wrong_chain.value.tx_hash == hashlib.sha256(raw).hexdigest()
    assert net.client.status()["height"] == height
    assert net.client.nonce(member.public_hex)["next"] == 1
    # the admin's local nonce count is untouched by the raw submission that was refused
    assert net.client.send(net.admin, "identity.enrol_member", 1, enrol("cd" * 32))["receipt"]["code"] == 0


def test_duplicate_submission_is_409(net: Net) -> None:
    raw = sign_tx(net.admin, net.client.chain_id(), "identity.enrol_member", 1, 1, enrol("ab" * 32))
    assert net.client.submit(raw, wait=True)["receipt"]["code"] == 0
    with pytest.raises(ClientError) as dup:
        net.client.submit(raw)
    assert (dup.value.code, dup.value.http_status) == (int(Code.DUPLICATE_TX), 409)


def test_submit_batch(net: Net) -> None:
    chain_id = net.client.chain_id()
    raws = [sign_tx(net.admin, chain_id, "identity.enrol_member", 1, n, enrol(SigningKey.generate().public_hex))
            for n in (1, 2, 3)]
    doc = net.client.submit_batch(raws, wait=True)
    assert (doc["accepted"], doc["rejected"]) == (3, 0)
    assert [r["receipt"]["code"] for r in doc["results"]] == [0, 0, 0]


def test_proof_from_the_client_verifies_against_the_genesis(net: Net) -> None:
    result = net.client.send(net.admin, "identity.enrol_member", 1, enrol(SigningKey.generate().public_hex))
    doc = net.client.tx(result["tx_hash"])
    genesis = net.home.genesis()
    for source in (genesis, net.home.genesis_path, str(net.home.genesis_path),
                   json.loads(net.home.genesis_path.read_text())):
        receipt = verify_proof(doc["proof"], source)
        assert receipt.tx == result["tx_hash"] and receipt.code == 0
    forged = {**doc["proof"], "tx": sign_tx(net.admin, genesis.chain_id, "identity.enrol_member", 1, 9,
                                            enrol("ef" * 32)).hex()}
    with pytest.raises(ProofInvalid):
        verify_proof(forged, genesis)
    with pytest.raises(ProofInvalid):  # a validator set that never signed this block
        verify_proof(doc["proof"], genesis, validators=[SigningKey.generate().public_hex])


def test_query_methods(net: Net) -> None:
    patient = SigningKey.generate()
    net.client.send(patient, "identity.register_patient", 1, {})
    member = SigningKey.generate()
    net.client.send(net.admin, "identity.enrol_member", 1, enrol(member.public_hex, ["physician"]))
    second = SigningKey.generate()
    net.client.send(net.admin, "governance.propose", 1, {
        "action": {"kind": "add_organisation", "organisation": {"admins": [second.public_hex], "id": "org.two",
                                                                "name": "Two", "roles": ["pharmacy"]}},
        "title": "Add org.two"})
    opened = net.client.send(net.admin, "governance.propose", 1, {
        "action": {"kind": "set_org_roles", "org": "org.two", "roles": ["pharmacy", "distributor"]},
        "title": "org.two distributes"})
    pid = opened["receipt"]["result"]["proposal"]

    status = net.client.status()
    assert status["chain_id"] == net.client.chain_id() == "careledger-dev"
    assert [o["id"] for o in net.client.organisations()] == ["org.dev", "org.two"]
    assert net.client.organisation("org.two")["roles"] == ["pharmacy"]
    assert [m["key"] for m in net.client.members("org.dev")] == [member.public_hex]
    assert net.client.key_info(member.public_hex)["roles"] == ["physician"]
    assert net.client.key_info(second.public_hex)["kind"] == "admin"
    pseudonym = compute_pseudonym(patient.public_hex)
    assert net.client.patient(pseudonym) == {"pseudonym": pseudonym, "key": patient.public_hex,
                                             "status": "active", "since": 1}
    assert [p["id"] for p in net.client.proposals(status="open")] == [pid]
    assert len(net.client.proposals()) == 2
    assert net.client.proposal(pid)["status"] == "open"
    assert net.client.validators() == [{"pub_key": net.node.node_key.public_hex, "org": "org.dev", "power": 10}]
    latest = net.client.block()
    assert latest == net.client.block("latest") == net.client.block(status["height"]) == \
        net.client.block(str(status["height"]))
    assert latest["txs"] == [opened["tx_hash"]]
    assert net.client.nonce(net.admin.public_hex)["next"] == 4

    with pytest.raises(ClientError) as missing:
        net.client.organisation("org.none")
    assert (missing.value.name, missing.value.http_status) == ("NOT_FOUND", 404)
    with pytest.raises(ClientError) as not_a_tx:
        net.client.tx("00" * 32)
    assert not_a_tx.value.code == int(Code.NOT_FOUND)
    with pytest.raises(ClientError) as escaped:  # path segments are escaped: no way onto another route
        net.client.organisation("../../status")
    assert escaped.value.http_status in (400, 404)


def test_unreachable_node_raises_node_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", timeout=2) as client, pytest.raises(NodeUnavailable) as down:
        client.status()
    assert (down.value.code, down.value.name, down.value.http_status) == (
        int(Code.NODE_UNAVAILABLE), "NODE_UNAVAILABLE", None)


def _client(handler: httpx.MockTransport) -> Client:
    return Client("http://node.test", transport=handler)


def test_error_responses_map_to_client_errors() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/status":
            return httpx.Response(503, json={"error": {"code": 304, "name": "MEMPOOL_FULL", "message": "busy"}})
        if request.url.path == "/v1/blocks/latest":
            return httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"})
        if request.url.path == "/v1/governance/validators":
            return httpx.Response(200, text="not json")
        raise httpx.ReadTimeout("slow", request=request)

    client = _client(httpx.MockTransport(answer))
    with pytest.raises(ClientError) as busy:
        client.status()
    assert (busy.value.code, busy.value.name, busy.value.message, busy.value.http_status) == (
        304, "MEMPOOL_FULL", "busy", 503)
    assert not isinstance(busy.value, NodeUnavailable)
    with pytest.raises(ClientError) as proxy:
        client.block()
    assert (proxy.value.name, proxy.value.http_status) == ("INTERNAL_ERROR", 502)
    with pytest.raises(ClientError) as garbled:
        client.validators()
    assert (garbled.value.name, garbled.value.http_status) == ("INTERNAL_ERROR", 200)
    with pytest.raises(NodeUnavailable) as slow:
        client.tx("00" * 32)
    assert (slow.value.name, slow.value.http_status) == ("TIMEOUT", None)


def test_submit_sends_the_bytes_unchanged_and_asks_to_wait() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"tx_hash": "h", "status": "committed", "height": 1, "receipt": {}})

    raw = b'{"body":{},"sig":"00"}'
    assert _client(httpx.MockTransport(answer)).submit(raw, wait=True, timeout=5)["status"] == "committed"
    (request,) = seen
    assert request.content == raw
    assert request.headers["content-type"] == "application/json"
    assert (request.url.params["wait"], request.url.params["timeout"]) == ("commit", "5")
