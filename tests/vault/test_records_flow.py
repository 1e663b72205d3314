"""The whole records flow through the real HTTP API of one embedded node hosting two custodians."""

from __future__ import annotations

from decimal import Decimal

from careledger.client import ClientError
from careledger.core.errors import Code
from support.records import (
    ENCOUNTER,
    OBSERVATION,
    World,
    world_fixture,  # noqa: F401
)


def test_store_read_consent_audit(world: World) -> None:
    alice = world.pseudonym("alice")
    stored = world.client("dr_a").store("hospital", alice, OBSERVATION)
    record = stored["records"][0]["record"]
    assert stored["records"][0]["type"] == "Observation"
    # the custodian's own physician reads
    [own] = world.client("dr_a").read("hospital", alice, [record])
    assert own.mode == "custodian"
    assert own.resource["valueQuantity"]["value"] == Decimal("72.5")
    # the clinic has no consent
    try:
        world.client("dr_b").read("hospital", alice, [record])
        raise AssertionError("read without consent succeeded")
    except ClientError as exc:
        assert exc.code == Code.CONSENT_REQUIRED
    world.client("alice").grant(alice, "org", "clinic", ["TREAT"])
    [rec] = world.client("dr_b").read("hospital", alice, [record])
    assert rec.mode == "consent"
    world.wait_for_audit()
    view = world.client("alice").view(fhir=True)
    outcomes = [(e["outcome"], e["requester_org"]) for e in view["access_log"]]
    assert ("denied", "clinic") in outcomes and ("granted", "clinic") in outcomes
    assert view["records"][0]["record"] == record
    assert view["access_log_fhir"]["entry"][0]["resource"]["resourceType"] == "AuditEvent"
    _ = ENCOUNTER


def _audit_entries(world: World, pseudonym: str) -> list[dict[str, object]]:
    """The patient's audit entries in *committed* ledger state, read straight from the node's store."""
    from careledger.contracts.audit import audit_prefix
    from careledger.core import codec

    view = world.node.store.view()
    return [codec.decode(bytes(v)) for k, v in view.connection.execute(
        "SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key",
        (audit_prefix(pseudonym), audit_prefix(pseudonym) + "~")).fetchall()]


def test_audit_is_committed_before_content_is_released(world: World) -> None:
    """audit_wait = "committed" (the default): when a read returns, its audit entry is already in a block."""
    from careledger.api.records import audit_wait_of

    assert audit_wait_of(world.home.path) == "committed"
    alice = world.pseudonym("alice")
    record = world.client("dr_a").store("hospital", alice, OBSERVATION)["records"][0]["record"]
    for _ in range(3):
        before = len(_audit_entries(world, alice))
        world.client("dr_a").read("hospital", alice, [record])
        after = _audit_entries(world, alice)  # no wait_for_audit: it must be committed already
        assert len(after) == before + 1 and after[-1]["outcome"] == "granted" and after[-1]["record"] == record
    try:
        world.client("dr_b").read("hospital", alice, [record])
        raise AssertionError("read without consent succeeded")
    except ClientError as exc:
        assert exc.code == Code.CONSENT_REQUIRED
    assert _audit_entries(world, alice)[-1]["outcome"] == "denied"  # denials are committed before the answer too


def test_audit_wait_setting(world: World) -> None:
    """``audit_wait`` is node configuration: "committed" or "admitted"; anything else refuses to load."""
    import dataclasses
    import json

    import pytest

    from careledger.api.records import audit_wait_of
    from careledger.node.home import HomeError, NodeConfig
    from careledger.vault.gateway import Gateway
    from careledger.vault.ledger import NodeLedger
    from careledger.vault.requests import SignedRequest, sign_headers

    home = world.home
    home.write_config(dataclasses.replace(home.config(), audit_wait="admitted"))
    assert audit_wait_of(home.path) == "admitted"
    doc = json.loads(home.config_path.read_text())
    doc["audit_wait"] = "never"
    with pytest.raises(HomeError, match="audit_wait"):
        NodeConfig.from_json(doc)
    with pytest.raises(ValueError, match="audit_wait"):
        Gateway(NodeLedger(world.node), {}, audit_wait="later")
    # an "admitted" gateway releases content once the entry is in the mempool; it still commits
    alice = world.pseudonym("alice")
    record = world.client("dr_a").store("hospital", alice, OBSERVATION)["records"][0]["record"]
    gateway = Gateway.open(NodeLedger(world.node), home.path / "vault", audit_wait="admitted")
    try:
        before = len(_audit_entries(world, alice))
        body = json.dumps({"custodian": "hospital", "emergency": False, "kind": "read", "patient": alice,
                           "purpose": "TREAT", "records": [record]}).encode()
        headers = sign_headers(world.keys["dr_a"], world.node.chain.chain_id, "POST", "/v1/gateway/read", body)
        read = SignedRequest("POST", "/v1/gateway/read", body, headers["Authorization"])
        assert [r["record"] for r in gateway.read(read)["records"]] == [record]
        world.wait_for_audit()
        assert len(_audit_entries(world, alice)) == before + 1
    finally:
        gateway.close()
