"""Rotation end to end, through a real node, HTTP API and custodian gateway: a physician and a patient
rotate their keys and everything granted before still holds; the old keys are refused."""

from __future__ import annotations

from careledger.client import ClientError
from careledger.client.records import RecordsClient
from careledger.core.errors import Code
from support import seeded_key
from support.records import (
    OBSERVATION,
    World,
    world_fixture,  # noqa: F401
)


def test_rotated_keys_keep_consents_records_and_the_audit_trail(world: World) -> None:
    alice = world.pseudonym("alice")
    stored = world.client("dr_a").store("hospital", alice, OBSERVATION)
    record = stored["records"][0]["record"]
    dr_b = world.keys["dr_b"]
    world.client("alice").grant(alice, "member", dr_b.public_hex, ["TREAT"])
    # the clinic's physician and the patient both rotate
    assert world.ledger is not None
    dr_b_new, alice_new = seeded_key("gateway/dr_b/2"), seeded_key("gateway/alice/2")
    assert world.ledger.rotate_key(dr_b, dr_b_new)["receipt"]["code"] == 0
    assert world.ledger.rotate_key(world.keys["alice"], alice_new)["receipt"]["code"] == 0
    physician = RecordsClient(world.ledger, dr_b_new)
    patient = RecordsClient(world.ledger, alice_new)
    try:
        assert patient.pseudonym == alice  # her pseudonym is the ledger's, not one computed from the new key
        [granted] = physician.read("hospital", alice, [record])
        assert granted.mode == "consent"  # the consent names the identity key, the new key signs for it
        try:
            world.client("dr_b").read("hospital", alice, [record])
            raise AssertionError("a rotated-away key read a record")
        except ClientError as exc:
            assert exc.code == Code.SIGNER_REVOKED
        world.wait_for_audit()
        log = patient.view()["access_log"]
        # every entry names the physician's identity key, before and after the rotation
        assert {e["requester"] for e in log if e["requester_org"] == "clinic"} == {dr_b.public_hex}
        assert [e["outcome"] for e in log if e["requester_org"] == "clinic"] == ["granted", "denied"]
    finally:
        physician.close()
        patient.close()
