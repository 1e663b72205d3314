"""The node's HTTP API, over real HTTP on loopback against a real node on a real SQLite home.

Tests where sockets are not the point (the OpenAPI document, error shapes) go through the ASGI app
in process (httpx.ASGITransport). Every refused submission is checked to have written nothing: same
height, same app hash, same nonces, empty mempool.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest

from careledger.api.app import create_app
from careledger.api.server import BackgroundServer, serve_in_thread
from careledger.contracts.identity import compute_pseudonym
from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.proofs import ProofInvalid, verify_proof
from careledger.core.tx import sign_tx
from careledger.node.home import Home, init_home
from careledger.node.solo import Node
from careledger.vault.requests import SCHEME

GENESIS_TIME_MS = 1_700_000_000_000
JSON = {"content-type": "application/json"}


@dataclass
class Net:
    home: Home
    node: Node
    server: BackgroundServer
    http: httpx.Client
    admin: SigningKey

    @property
    def chain_id(self) -> str:
        return self.node.chain.chain_id

    def sign(self, key: SigningKey, nonce: int, tx_type: str, payload: dict[str, Any], version: int = 1) -> bytes:
        return sign_tx(key, self.chain_id, tx_type, version, nonce, payload)

    def enrol(self, nonce: int, member: str, roles: list[str], signer: SigningKey | None = None,
              **extra: Any) -> bytes:
        return self.sign(signer or self.admin, nonce, "identity.enrol_member",
                         {"member": member, "org": "org.dev", "roles": roles, **extra})

    def post(self, raw: bytes, wait: str = "commit", **params: Any) -> httpx.Response:
        return self.http.post("/v1/txs", content=raw, params={"wait": wait, **params},
                              headers={"content-type": "application/json"})

    def commit(self, raw: bytes) -> dict[str, Any]:
        response = self.post(raw)
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return doc

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def snapshot(self, *keys: SigningKey) -> tuple[Any, ...]:
        status = self.get("/v1/status")
        nonces = [self.get(f"/v1/accounts/{k.public_hex}/nonce") for k in keys]
        return status["height"], status["app_hash"], status["mempool"], nonces


def _open(tmp_path: Path, start: bool) -> Iterator[Net]:
    home = init_home(tmp_path / "home", None, None, GENESIS_TIME_MS)
    node = home.open_node()
    if start:
        node.start()
    server = serve_in_thread(node)
    http = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield Net(home, node, server, http, home.key("admin"))
    finally:
        http.close()
        server.stop()
        node.close()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    yield from _open(tmp_path, start=True)


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[Net]:
    """A node whose engine is not running: admitted transactions stay pending."""
    yield from _open(tmp_path, start=False)


def assert_error(response: httpx.Response, status: int, code: Code) -> dict[str, Any]:
    assert response.status_code == status, response.text
    doc: dict[str, Any] = response.json()
    assert doc["error"] == {"code": int(code), "name": code.name, "message": doc["error"]["message"]}
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    return doc


# --- submission ---------------------------------------------------------------------------------------

def test_submit_and_wait_for_commit(net: Net) -> None:
    member = SigningKey.generate()
    raw = net.enrol(1, member.public_hex, ["physician"])
    doc = net.commit(raw)
    assert doc["tx_hash"] == hashlib.sha256(raw).hexdigest()
    assert doc["status"] == "committed"
    assert doc["height"] == 1 == net.get("/v1/status")["height"]
    assert doc["receipt"] == {"code": 0, "name": "OK", "result": {"member": member.public_hex, "org": "org.dev"},
                              "events": [{"type": "member_enrolled", "attrs": {
                                  "member": member.public_hex, "org": "org.dev", "roles": ["physician"]}}],
                              "index": 0, "message": ""}
    assert net.get(f"/v1/identity/keys/{member.public_hex}")["kind"] == "member"
    assert net.get(f"/v1/accounts/{net.admin.public_hex}/nonce") == {
        "account": net.admin.public_hex, "committed": 1, "pending": 0, "next": 2}


def test_submit_without_wait_is_accepted_then_commits(net: Net) -> None:
    raw = net.enrol(1, SigningKey.generate().public_hex, ["nurse"])
    response = net.post(raw, wait="none")
    assert response.status_code == 202
    assert response.json() == {"tx_hash": hashlib.sha256(raw).hexdigest(), "status": "pending"}
    assert net.node.wait_for_height(1, timeout=10)
    assert net.get(f"/v1/txs/{response.json()['tx_hash']}")["status"] == "committed"


def test_committed_but_failed_transaction_is_200_with_its_receipt(net: Net) -> None:
    member = SigningKey.generate()
    doc = net.commit(net.enrol(1, member.public_hex, ["inspector"]))  # not a hospital role
    assert doc["status"] == "committed" and doc["height"] == 1
    receipt = doc["receipt"]
    assert (receipt["code"], receipt["name"], receipt["result"], receipt["events"]) == (
        int(Code.ROLE_NOT_ALLOWED), "ROLE_NOT_ALLOWED", None, [])
    assert "inspector" in receipt["message"]
    # the nonce is consumed, every other write rolled back
    assert net.get(f"/v1/accounts/{net.admin.public_hex}/nonce")["committed"] == 1
    assert_error(net.http.get(f"/v1/identity/keys/{member.public_hex}"), 404, Code.NOT_FOUND)


def test_member_without_admin_role_is_refused_at_admission(net: Net) -> None:
    member = SigningKey.generate()
    net.commit(net.enrol(1, member.public_hex, ["physician"]))
    before = net.snapshot(net.admin, member)
    raw = net.enrol(1, SigningKey.generate().public_hex, ["nurse"], signer=member)
    doc = assert_error(net.post(raw), 403, Code.UNAUTHORISED)
    assert doc["tx_hash"] == hashlib.sha256(raw).hexdigest()
    assert net.snapshot(net.admin, member) == before
    assert_error(net.http.get(f"/v1/txs/{doc['tx_hash']}"), 404, Code.NOT_FOUND)


def _wire(raw: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(raw)
    return doc


def _flip_sig(raw: bytes) -> bytes:
    doc = _wire(raw)
    doc["sig"] = ("1" if doc["sig"][0] != "1" else "2") + doc["sig"][1:]
    return codec.encode(doc)


def _drop_sig(raw: bytes) -> bytes:
    doc = _wire(raw)
    doc["sig"] = ""
    return codec.encode(doc)


RefusalCase = Callable[[Net], bytes]
REFUSALS: list[tuple[str, RefusalCase, int, Code]] = [
    ("malformed", lambda n: b'{"body": nope', 400, Code.MALFORMED_ENCODING),
    ("not utf-8", lambda n: b"\xff\xfe", 400, Code.MALFORMED_ENCODING),
    ("empty", lambda n: b"", 400, Code.MALFORMED_ENCODING),
    ("float", lambda n: b'{"body":1.5,"sig":""}', 400, Code.MALFORMED_ENCODING),
    ("extra whitespace", lambda n: n.enrol(1, "ab" * 32, ["nurse"]).replace(b'":', b'": ', 1), 400,
     Code.NON_CANONICAL_ENCODING),
    ("pretty printed", lambda n: json.dumps(_wire(n.enrol(1, "ab" * 32, ["nurse"])), indent=2).encode(), 400,
     Code.NON_CANONICAL_ENCODING),
    ("wrong chain", lambda n: sign_tx(n.admin, "other-chain", "identity.enrol_member", 1, 1,
                                      {"member": "ab" * 32, "org": "org.dev", "roles": ["nurse"]}), 401,
     Code.WRONG_CHAIN),
    ("bad signature", lambda n: _flip_sig(n.enrol(1, "ab" * 32, ["nurse"])), 401, Code.BAD_SIGNATURE),
    ("missing signature", lambda n: _drop_sig(n.enrol(1, "ab" * 32, ["nurse"])), 401, Code.MISSING_SIGNATURE),
    ("unknown type", lambda n: n.sign(n.admin, 1, "records.teleport", {}), 400, Code.UNKNOWN_TX_TYPE),
    ("unknown version", lambda n: n.sign(n.admin, 1, "identity.enrol_member", {}, version=9), 400,
     Code.UNKNOWN_TX_TYPE),
    ("invalid payload", lambda n: n.enrol(1, "ab" * 32, []), 400, Code.INVALID_PAYLOAD),
    ("out-of-order nonce", lambda n: n.enrol(3, "ab" * 32, ["nurse"]), 409, Code.NONCE_OUT_OF_ORDER),
    ("unknown signer", lambda n: n.enrol(1, "ab" * 32, ["nurse"], signer=SigningKey(b"\x07" * 32)), 401,
     Code.UNKNOWN_SIGNER),
]


@pytest.mark.parametrize(("raw_of", "status", "code"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_refused_submission_writes_nothing(net: Net, raw_of: RefusalCase, status: int, code: Code) -> None:
    before = net.snapshot(net.admin)
    raw = raw_of(net)
    doc = assert_error(net.post(raw), status, code)
    assert doc["tx_hash"] == hashlib.sha256(raw).hexdigest()
    assert net.snapshot(net.admin) == before
    assert before[0] == 0 and before[3][0]["next"] == 1
    # the honest transaction still goes through with the same nonce afterwards
    assert net.commit(net.enrol(1, SigningKey.generate().public_hex, ["nurse"]))["receipt"]["code"] == 0


def test_replayed_nonce_is_409(net: Net) -> None:
    net.commit(net.enrol(1, SigningKey.generate().public_hex, ["nurse"]))
    before = net.snapshot(net.admin)
    assert_error(net.post(net.enrol(1, SigningKey.generate().public_hex, ["nurse"])), 409, Code.NONCE_REPLAYED)
    assert net.snapshot(net.admin) == before


def test_duplicate_of_a_committed_transaction_is_409(net: Net) -> None:
    raw = net.enrol(1, SigningKey.generate().public_hex, ["nurse"])
    net.commit(raw)
    before = net.snapshot(net.admin)
    assert_error(net.post(raw), 409, Code.DUPLICATE_TX)
    assert_error(net.post(raw, wait="none"), 409, Code.DUPLICATE_TX)
    assert net.snapshot(net.admin) == before


def test_duplicate_of_a_pending_transaction_is_409(idle: Net) -> None:
    raw = idle.enrol(1, SigningKey.generate().public_hex, ["nurse"])
    assert idle.post(raw, wait="none").status_code == 202
    assert_error(idle.post(raw, wait="none"), 409, Code.DUPLICATE_TX)
    assert idle.get("/v1/status")["mempool"] == 1


def test_revoked_member_is_403(net: Net) -> None:
    member = SigningKey.generate()
    net.commit(net.enrol(1, member.public_hex, ["registrar"]))
    net.commit(net.sign(net.admin, 2, "identity.revoke_member",
                        {"member": member.public_hex, "org": "org.dev", "reason": "left"}))
    before = net.snapshot(net.admin, member)
    patient_tx = net.sign(member, 1, "identity.register_patient", {})
    assert_error(net.post(patient_tx), 403, Code.SIGNER_REVOKED)
    assert net.snapshot(net.admin, member) == before


def test_oversized_body_is_413_with_its_hash(net: Net) -> None:
    limit = net.node.chain.max_tx_bytes
    before = net.snapshot(net.admin)
    body = b"x" * (limit + 1)
    doc = assert_error(net.post(body), 413, Code.OVERSIZED)
    assert str(limit) in doc["error"]["message"]
    assert doc["tx_hash"] == hashlib.sha256(body).hexdigest()

    def chunks() -> Iterator[bytes]:  # no Content-Length: read to the end, named by its hash
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096

    response = net.http.post("/v1/txs", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    doc = assert_error(response, 413, Code.OVERSIZED)
    assert doc["tx_hash"] == hashlib.sha256(b"x" * 4096 * (limit // 4096 + 2)).hexdigest()
    assert net.snapshot(net.admin) == before


def test_signed_transaction_over_the_limit_is_413(net: Net) -> None:
    limit = net.node.chain.max_tx_bytes
    raw = net.enrol(1, "ab" * 32, ["nurse"], handle="h")
    padded = net.sign(net.admin, 1, "identity.set_org_api", {"org": "org.dev", "api": "https://x/" + "a" * limit})
    assert len(padded) > limit >= len(raw)
    assert assert_error(net.post(padded), 413, Code.OVERSIZED)["tx_hash"] == hashlib.sha256(padded).hexdigest()


# --- waiting, pending and the engine -------------------------------------------------------------------

def test_wait_timeout_is_504_and_the_transaction_still_commits(idle: Net) -> None:
    raw = idle.enrol(1, SigningKey.generate().public_hex, ["nurse"])
    tx_hash = hashlib.sha256(raw).hexdigest()
    doc = assert_error(idle.post(raw, timeout=0.2), 504, Code.TIMEOUT)
    assert doc["tx_hash"] == tx_hash and doc["status"] == "pending"
    assert idle.get(f"/v1/txs/{tx_hash}") == {"tx_hash": tx_hash, "status": "pending"}
    assert idle.get(f"/v1/accounts/{idle.admin.public_hex}/nonce") == {
        "account": idle.admin.public_hex, "committed": 0, "pending": 1, "next": 2}
    # the next nonce queues behind the pending one
    assert idle.post(idle.enrol(2, SigningKey.generate().public_hex, ["nurse"]), wait="none").status_code == 202
    assert idle.get(f"/v1/accounts/{idle.admin.public_hex}/nonce")["next"] == 3
    idle.node.start()  # the timed-out waiter must not have broken the engine's future
    assert idle.node.wait_for_height(1, timeout=10)
    third = idle.commit(idle.enrol(3, SigningKey.generate().public_hex, ["nurse"]))
    assert third["receipt"]["code"] == 0
    committed = idle.get(f"/v1/txs/{tx_hash}")
    assert committed["status"] == "committed" and committed["receipt"]["code"] == 0
    assert idle.get(f"/v1/accounts/{idle.admin.public_hex}/nonce") == {
        "account": idle.admin.public_hex, "committed": 3, "pending": 0, "next": 4}


def test_timeout_parameter_is_bounded(net: Net) -> None:
    raw = net.enrol(1, "ab" * 32, ["nurse"])
    assert_error(net.post(raw, timeout=121), 400, Code.BAD_REQUEST)
    assert_error(net.post(raw, timeout=0), 400, Code.BAD_REQUEST)
    assert_error(net.post(raw, wait="forever"), 400, Code.BAD_REQUEST)
    assert net.get("/v1/status")["height"] == 0


# --- batch --------------------------------------------------------------------------------------------

def test_batch_admits_in_order_and_reports_each_item(net: Net) -> None:
    members = [SigningKey.generate().public_hex for _ in range(3)]
    raws = [net.enrol(i + 1, m, ["nurse"]) for i, m in enumerate(members)]
    replay = net.enrol(2, SigningKey.generate().public_hex, ["nurse"])
    body = [raws[0].hex(), raws[1].hex(), "zz", raws[2].hex(), replay.hex()]
    response = net.http.post("/v1/txs/batch", json=body, params={"wait": "commit"})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert (doc["accepted"], doc["rejected"]) == (3, 2)
    results = doc["results"]
    assert [r["status"] for r in results] == ["committed", "committed", "rejected", "committed", "rejected"]
    assert [r["tx_hash"] for r in results] == [hashlib.sha256(r).hexdigest() for r in raws[:2]] + [
        None, hashlib.sha256(raws[2]).hexdigest(), hashlib.sha256(replay).hexdigest()]
    assert all(r["receipt"]["code"] == 0 and r["height"] >= 1 for r in results if r["status"] == "committed")
    assert results[2]["error"]["code"] == int(Code.MALFORMED_ENCODING)
    assert results[4]["error"]["code"] == int(Code.NONCE_REPLAYED)
    assert net.get(f"/v1/accounts/{net.admin.public_hex}/nonce")["committed"] == 3
    assert [m["key"] for m in net.get("/v1/identity/organisations/org.dev/members")["members"]] == sorted(members)


def test_batch_item_refused_mid_way_takes_its_signers_later_nonces_with_it(net: Net) -> None:
    raws = [net.enrol(n, SigningKey.generate().public_hex, ["nurse"]) for n in (1, 2, 3)]
    raws[1] = _flip_sig(raws[1])
    doc = net.http.post("/v1/txs/batch", json=[r.hex() for r in raws], params={"wait": "commit"}).json()
    assert [r["status"] for r in doc["results"]] == ["committed", "rejected", "rejected"]
    assert [r["error"]["name"] for r in doc["results"][1:]] == ["BAD_SIGNATURE", "NONCE_OUT_OF_ORDER"]
    assert net.get(f"/v1/accounts/{net.admin.public_hex}/nonce") == {
        "account": net.admin.public_hex, "committed": 1, "pending": 0, "next": 2}


def test_batch_without_wait_returns_pending(net: Net) -> None:
    raws = [net.enrol(i + 1, SigningKey.generate().public_hex, ["nurse"]) for i in range(2)]
    doc = net.http.post("/v1/txs/batch", json=[r.hex() for r in raws]).json()
    assert [r["status"] for r in doc["results"]] == ["pending", "pending"]
    assert net.node.wait_for_height(1, timeout=10)


def test_bad_batches_are_refused_whole(net: Net) -> None:
    assert_error(net.http.post("/v1/txs/batch", content=b"{}", headers=JSON), 400, Code.BAD_REQUEST)
    assert_error(net.http.post("/v1/txs/batch", content=b"[1, 2]", headers=JSON), 400, Code.BAD_REQUEST)
    assert_error(net.http.post("/v1/txs/batch", content=b"[nope", headers=JSON), 400, Code.BAD_REQUEST)
    assert_error(net.http.post("/v1/txs/batch", json=["00"] * 1001), 413, Code.OVERSIZED)
    assert net.get("/v1/status")["height"] == 0


# --- lookups and proofs -------------------------------------------------------------------------------

def test_committed_transaction_comes_with_a_proof_that_verifies(net: Net) -> None:
    net.commit(net.enrol(1, SigningKey.generate().public_hex, ["nurse"]))
    raw = net.enrol(2, SigningKey.generate().public_hex, ["physician"])
    batch = [raw, net.enrol(3, SigningKey.generate().public_hex, ["inspector"])]
    net.http.post("/v1/txs/batch", json=[r.hex() for r in batch], params={"wait": "commit"})
    tx_hash = hashlib.sha256(raw).hexdigest()
    doc = net.get(f"/v1/txs/{tx_hash}")
    assert doc["status"] == "committed" and doc["tx_hash"] == tx_hash
    assert doc["tx"] == _wire(raw)
    assert doc["tx"]["body"]["type"] == "identity.enrol_member"
    genesis = net.home.genesis()
    receipt = verify_proof(doc["proof"], genesis.chain_id, [v.pub_key for v in genesis.validators])
    assert receipt.tx == tx_hash and receipt.code == doc["receipt"]["code"] == 0
    assert receipt.index == doc["index"] and doc["proof"]["header"]["height"] == doc["height"]
    assert bytes.fromhex(doc["proof"]["tx"]) == raw

    tampered = {**doc["proof"], "receipt": {**doc["proof"]["receipt"], "code": 7}}
    with pytest.raises(ProofInvalid):
        verify_proof(tampered, genesis.chain_id, [v.pub_key for v in genesis.validators])
    with pytest.raises(ProofInvalid):
        verify_proof(doc["proof"], genesis.chain_id, [SigningKey.generate().public_hex])


def test_unknown_and_malformed_transaction_hashes(net: Net) -> None:
    assert_error(net.http.get(f"/v1/txs/{'00' * 32}"), 404, Code.NOT_FOUND)
    assert_error(net.http.get("/v1/txs/xyz"), 400, Code.BAD_REQUEST)


def test_blocks(net: Net) -> None:
    assert_error(net.http.get("/v1/blocks/latest"), 404, Code.NOT_FOUND)
    first = net.commit(net.enrol(1, SigningKey.generate().public_hex, ["nurse"]))
    failed = net.commit(net.enrol(2, SigningKey.generate().public_hex, ["inspector"]))
    latest = net.get("/v1/blocks/latest")
    assert latest == net.get(f"/v1/blocks/{failed['height']}")
    assert latest["receipts"] == [{"tx": failed["tx_hash"], "index": 0, "code": int(Code.ROLE_NOT_ALLOWED),
                                   "name": "ROLE_NOT_ALLOWED"}]
    assert latest["txs"] == [failed["tx_hash"]]
    block1 = net.get("/v1/blocks/1")
    assert block1["txs"] == [first["tx_hash"]] and block1["header"]["height"] == 1
    assert latest["header"]["prev_hash"] == block1["hash"]
    assert hashlib.sha256(codec.encode(block1["header"])).hexdigest() == block1["hash"]
    assert block1["header"]["proposer"] == net.node.node_key.public_hex and len(block1["signature"]) == 128
    status = net.get("/v1/status")
    assert status["height"] == latest["height"] and status["block_hash"] == latest["hash"]
    assert_error(net.http.get("/v1/blocks/99"), 404, Code.NOT_FOUND)
    assert_error(net.http.get("/v1/blocks/0"), 400, Code.BAD_REQUEST)
    assert_error(net.http.get("/v1/blocks/one"), 400, Code.BAD_REQUEST)


def test_status(net: Net) -> None:
    status = net.get("/v1/status")
    genesis = net.home.genesis()
    assert status["chain_id"] == genesis.chain_id and status["genesis_hash"] == genesis.hash.hex()
    assert (status["height"], status["mempool"], status["engine"]) == (0, 0, "solo")
    assert status["node_key"] == net.node.node_key.public_hex


# --- contract queries -----------------------------------------------------------------------------------

def test_identity_queries(net: Net) -> None:
    orgs = net.get("/v1/identity/organisations")["organisations"]
    assert [o["id"] for o in orgs] == ["org.dev"]
    org = net.get("/v1/identity/organisations/org.dev")
    assert org == orgs[0]
    assert (org["admins"], org["roles"], org["status"], org["since"]) == ([net.admin.public_hex], ["hospital"],
                                                                          "active", 0)
    assert_error(net.http.get("/v1/identity/organisations/org.none"), 404, Code.NOT_FOUND)
    assert_error(net.http.get("/v1/identity/organisations/org.none/members"), 404, Code.NOT_FOUND)
    assert_error(net.http.get("/v1/identity/organisations/BAD_ID"), 400, Code.BAD_REQUEST)
    assert net.get("/v1/identity/organisations/org.dev/members") == {"org": "org.dev", "members": []}

    member = SigningKey.generate()
    net.commit(net.enrol(1, member.public_hex, ["physician", "nurse"], handle="dr.who"))
    assert net.get("/v1/identity/organisations/org.dev/members")["members"] == [
        {"key": member.public_hex, "roles": ["nurse", "physician"], "status": "active", "handle": "dr.who"}]

    info = net.get(f"/v1/identity/keys/{member.public_hex}")
    assert {k: info[k] for k in ("key", "kind", "org", "roles", "status", "active", "since", "validator")} == {
        "key": member.public_hex, "kind": "member", "org": "org.dev", "roles": ["nurse", "physician"],
        "status": "active", "active": True, "since": 1, "validator": None}
    admin = net.get(f"/v1/identity/keys/{net.admin.public_hex}")
    assert (admin["kind"], admin["org"], admin["roles"], admin["active"]) == ("admin", "org.dev", ["admin"], True)
    node_key = net.get(f"/v1/identity/keys/{net.node.node_key.public_hex}")
    assert node_key["validator"] == {"org": "org.dev", "power": 10} and node_key["active"] is False
    assert_error(net.http.get(f"/v1/identity/keys/{'cd' * 32}"), 404, Code.NOT_FOUND)
    assert_error(net.http.get("/v1/identity/keys/XYZ"), 400, Code.BAD_REQUEST)

    net.commit(net.sign(net.admin, 2, "identity.revoke_member",
                        {"member": member.public_hex, "org": "org.dev", "reason": "left"}))
    revoked = net.get(f"/v1/identity/keys/{member.public_hex}")
    assert (revoked["status"], revoked["active"], revoked["revoked_at"]) == ("revoked", False, 2)


def test_patient_query_shows_only_key_status_and_since(net: Net) -> None:
    patient = SigningKey.generate()
    doc = net.commit(net.sign(patient, 1, "identity.register_patient", {}))
    pseudonym = compute_pseudonym(patient.public_hex)
    assert doc["receipt"]["result"] == {"pseudonym": pseudonym}
    assert net.get(f"/v1/identity/patients/{pseudonym}") == {
        "pseudonym": pseudonym, "key": patient.public_hex, "status": "active", "since": doc["height"]}
    assert net.get(f"/v1/identity/keys/{patient.public_hex}")["kind"] == "patient"
    assert_error(net.http.get(f"/v1/identity/patients/pt-{'0' * 32}"), 404, Code.NOT_FOUND)
    assert_error(net.http.get("/v1/identity/patients/alice"), 400, Code.BAD_REQUEST)


def test_governance_queries(net: Net) -> None:
    assert net.get("/v1/governance/proposals") == {"proposals": []}
    assert net.get("/v1/governance/validators") == {
        "validators": [{"pub_key": net.node.node_key.public_hex, "org": "org.dev", "power": 10}]}
    second_admin = SigningKey.generate()
    add = {"action": {"kind": "add_organisation", "organisation": {
        "admins": [second_admin.public_hex], "id": "org.two", "name": "Second clinic", "roles": ["clinic"]}},
        "title": "Add org.two"}
    added = net.commit(net.sign(net.admin, 1, "governance.propose", add))
    assert added["receipt"]["result"]["status"] == "executed"  # one organisation: its yes is a 2/3 majority
    assert [o["id"] for o in net.get("/v1/identity/organisations")["organisations"]] == ["org.dev", "org.two"]

    roles = {"action": {"kind": "set_org_roles", "org": "org.two", "roles": ["clinic", "research"]},
             "title": "org.two also does research"}
    opened = net.commit(net.sign(net.admin, 2, "governance.propose", roles))
    pid = opened["receipt"]["result"]["proposal"]
    proposal = net.get(f"/v1/governance/proposals/{pid}")
    assert (proposal["id"], proposal["status"], proposal["yes"], proposal["no"], proposal["proposer_org"]) == (
        pid, "open", ["org.dev"], [], "org.dev")
    assert proposal["action"] == roles["action"]
    assert [p["id"] for p in net.get("/v1/governance/proposals", status="open")["proposals"]] == [pid]
    assert len(net.get("/v1/governance/proposals", status="executed")["proposals"]) == 1
    assert len(net.get("/v1/governance/proposals")["proposals"]) == 2
    assert_error(net.http.get("/v1/governance/proposals", params={"status": "maybe"}), 400, Code.BAD_REQUEST)
    assert_error(net.http.get(f"/v1/governance/proposals/gp-{'0' * 24}"), 404, Code.NOT_FOUND)
    assert_error(net.http.get("/v1/governance/proposals/nope"), 400, Code.BAD_REQUEST)

    net.commit(net.sign(second_admin, 1, "governance.vote", {"approve": True, "proposal": pid}))
    assert net.get(f"/v1/governance/proposals/{pid}")["status"] == "executed"
    assert net.get("/v1/governance/proposals", status="open") == {"proposals": []}


def test_nonce_query_rejects_malformed_keys(net: Net) -> None:
    assert_error(net.http.get("/v1/accounts/abc/nonce"), 400, Code.BAD_REQUEST)
    assert net.get(f"/v1/accounts/{'ef' * 32}/nonce") == {"account": "ef" * 32, "committed": 0, "pending": 0,
                                                          "next": 1}


# --- errors, documents, logs ----------------------------------------------------------------------------

def test_error_shapes_for_unknown_routes_and_methods(net: Net) -> None:
    doc = assert_error(net.http.get("/v1/no-such-thing"), 404, Code.NOT_FOUND)
    assert "/v1/no-such-thing" in doc["error"]["message"]
    assert_error(net.http.get("/"), 404, Code.NOT_FOUND)
    wrong_method = net.http.delete("/v1/status")
    assert_error(wrong_method, 405, Code.METHOD_NOT_ALLOWED)
    assert wrong_method.headers["allow"] == "GET"


def test_store_corruption_is_500_store_corrupted(net: Net) -> None:
    with sqlite3.connect(net.home.db_path) as conn:
        conn.execute("UPDATE state SET value = CAST(? AS BLOB) WHERE key = 'identity/org/org.dev'", (b'{"x":1}',))
    assert_error(net.http.get("/v1/identity/organisations/org.dev"), 500, Code.STORE_CORRUPTED)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def asgi(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    """The app in process (no socket), over a real node on a real home; the engine is not started."""
    node = init_home(tmp_path / "home", None, None, GENESIS_TIME_MS).open_node()
    transport = httpx.ASGITransport(app=create_app(node))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://careledger.test") as client:
            yield client, node
    finally:
        node.close()


@pytest.mark.anyio
async def test_openapi_lists_every_route_with_the_error_shape(asgi: tuple[httpx.AsyncClient, Node]) -> None:
    doc = (await asgi[0].get("/openapi.json")).json()
    assert doc["info"]["title"] == "CareLedger node API"
    assert set(doc["paths"]) >= {  # the core's routes; each contract adds its own
        "/v1/txs", "/v1/txs/batch", "/v1/txs/{tx_hash}", "/v1/status", "/v1/blocks/latest", "/v1/blocks/{height}",
        "/v1/accounts/{pubkey}/nonce", "/v1/identity/organisations", "/v1/identity/organisations/{org}",
        "/v1/identity/organisations/{org}/members", "/v1/identity/keys/{pubkey}",
        "/v1/identity/patients/{pseudonym}", "/v1/governance/proposals", "/v1/governance/proposals/{proposal_id}",
        "/v1/governance/validators"}
    assert {t["name"] for t in doc["tags"]} >= {"transactions", "blocks", "node", "accounts", "identity",
                                                "governance"}
    operations = [op for path in doc["paths"].values() for op in path.values()]
    assert all(op.get("summary") and op.get("description") and op.get("tags") for op in operations)
    assert not any("ValidationError" in str(op["responses"].get("422")) for op in operations)  # FastAPI's are gone
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    submit = doc["paths"]["/v1/txs"]["post"]
    assert {"200", "202", "400", "401", "409", "413", "504"} <= set(submit["responses"])
    assert "application/json" in submit["requestBody"]["content"]
    assert "ErrorResponse" in doc["components"]["schemas"]


@pytest.mark.anyio
async def test_openapi_declares_the_one_signed_request_scheme_and_the_typed_request_bodies(
        asgi: tuple[httpx.AsyncClient, Node]) -> None:
    doc = (await asgi[0].get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["CareLedgerRequest"]["type"] == "http" and schemes["CareLedgerRequest"]["scheme"] == SCHEME
    signed = {(method.upper(), path): op for path, ops in doc["paths"].items() for method, op in ops.items()
              if {"CareLedgerRequest": []} in op.get("security", [])}
    assert set(signed) == {("POST", "/v1/records/query"), ("POST", "/v1/gateway/read"),
                           ("POST", "/v1/gateway/store"), ("GET", "/v1/supply/alerts"), ("POST", "/fhir/auth/token"),
                           ("GET", "/fhir/{resource_type}"), ("GET", "/fhir/{resource_type}/{resource_id}"),
                           *(("POST", f"/v1/research/{p}") for p in ("releases", "packages", "answers", "results",
                                                                     "log")),
                           *(("POST", f"/v1/claims/{p}") for p in ("prepare", "coverages/prepare", "status", "list",
                                                                   "flags", "coverages", "eligibility"))}
    assert {"FhirBearer": []} in signed[("GET", "/fhir/{resource_type}")]["security"]
    assert not any("X-CareLedger-Timestamp" in str(op) for op in signed.values())  # the old headers are gone

    def kinds(method: str, path: str) -> set[str]:
        schema = signed[(method, path)]["requestBody"]["content"]["application/json"]["schema"]
        assert all(s["additionalProperties"] is False for s in schema.get("oneOf", [schema]))
        return {s["properties"]["kind"]["const"] for s in schema.get("oneOf", [schema])}

    assert kinds("POST", "/v1/records/query") == {"view", "index", "anchors"}
    assert kinds("POST", "/v1/gateway/read") == {"read"} and kinds("POST", "/v1/gateway/store") == {"store"}
    assert kinds("POST", "/fhir/auth/token") == {"token"}
    for route in ("release", "package", "answer", "results", "log"):
        path = "/v1/research/" + (route if route in ("results", "log") else route + "s")
        assert kinds("POST", path) == {f"research-{route}"}
        body = signed[("POST", path)]["requestBody"]["content"]["application/json"]["schema"]
        assert not {"requester", "time_ms", "nonce", "sig", "request"} & set(body["properties"]), path  # no envelope
    assert "$ref" not in json.dumps(signed[("POST", "/v1/research/log")]["requestBody"])  # the statement inlined
    assert kinds("POST", "/v1/claims/prepare") == {"claim.prepare"}
    assert kinds("POST", "/v1/claims/eligibility") == {"claims.eligibility"}
    assert "requestBody" not in signed[("GET", "/v1/supply/alerts")]


VECTORS = Path(__file__).resolve().parents[1] / "vectors"


@pytest.mark.anyio
async def test_openapi_transaction_bodies_are_generated_from_the_payload_models(
        asgi: tuple[httpx.AsyncClient, Node]) -> None:
    """Every registered (type, version) is one variant of ``SignedTransaction``; every transaction the
    vectors commit successfully is valid against it, and the same with an unknown payload field, a
    payload of another type or a wrong version is not."""
    doc = (await asgi[0].get("/openapi.json")).json()
    components = doc["components"]["schemas"]
    body = doc["paths"]["/v1/txs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SignedTransaction"}
    variants = components["SignedTransaction"]["oneOf"]
    registry = asgi[1].chain.registry
    assert [(v["properties"]["body"]["properties"]["type"]["const"],
             v["properties"]["body"]["properties"]["version"]["const"]) for v in variants] == registry.kinds()
    validator = jsonschema.Draft202012Validator({"components": doc["components"],
                                                 "$ref": "#/components/schemas/SignedTransaction"})
    committed: list[dict[str, Any]] = []
    for path in sorted(VECTORS.rglob("*.json")):
        vector = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(vector, dict) and isinstance(vector.get("post"), dict) and "block" in vector):
            continue
        by_hash = {hashlib.sha256(wire.encode()).hexdigest(): wire for wire in vector["block"]["txs"]}
        committed += [json.loads(by_hash[r["tx"]]) for r in vector["post"]["receipts"] if r["code"] == 0]
    assert {tx["body"]["type"] for tx in committed} == {t for t, _ in registry.kinds()}  # every type, by vectors
    for tx in committed:
        errors = [e.message for e in validator.iter_errors(tx)]
        assert not errors, (tx["body"]["type"], errors[:1])
        extra = {**tx, "body": {**tx["body"], "payload": {**tx["body"]["payload"], "unexpected": 1}}}
        later = {**tx, "body": {**tx["body"], "version": tx["body"]["version"] + 100}}
        assert not validator.is_valid(extra) and not validator.is_valid(later)


@pytest.mark.anyio
async def test_validation_errors_use_the_error_shape(asgi: tuple[httpx.AsyncClient, Node]) -> None:
    response = await asgi[0].get("/v1/blocks/abc")
    assert response.status_code == 400
    assert response.json()["error"]["name"] == "BAD_REQUEST"
    assert "abc" not in response.json()["error"]["message"]  # the offending input is never echoed


@pytest.mark.anyio
async def test_submission_in_process_is_pending_on_an_idle_engine(asgi: tuple[httpx.AsyncClient, Node]) -> None:
    client, node = asgi
    admin = Home(node.store.path.parent.parent).key("admin")
    raw = sign_tx(admin, node.chain.chain_id, "identity.enrol_member", 1, 1,
                  {"member": "ab" * 32, "org": "org.dev", "roles": ["nurse"]})
    response = await client.post("/v1/txs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert len(node.mempool) == 1


@pytest.mark.anyio
async def test_unexpected_errors_are_500_without_details(asgi: tuple[httpx.AsyncClient, Node],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client, node = asgi

    def broken() -> dict[str, Any]:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(node, "status", broken)
    response = await client.get("/v1/status")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": int(Code.INTERNAL_ERROR), "name": "INTERNAL_ERROR",
                                         "message": "internal error"}}


def test_logs_carry_hashes_and_codes_never_payloads(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "zz-private-handle-42"
    ok = net.enrol(1, SigningKey.generate().public_hex, ["nurse"], handle=marker)
    refused = net.enrol(1, SigningKey.generate().public_hex, ["nurse"], handle=marker)
    net.commit(ok)
    assert_error(net.post(refused), 409, Code.NONCE_REPLAYED)
    assert_error(net.post(b'{"secret":"' + marker.encode() + b'"}'), 400, Code.INVALID_PAYLOAD)
    assert hashlib.sha256(refused).hexdigest() in caplog.text and "NONCE_REPLAYED" in caplog.text
    assert marker not in caplog.text
