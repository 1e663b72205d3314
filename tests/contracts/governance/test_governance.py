"""Governance: consortium changes pass with more than 2/3 of the active organisations."""

from __future__ import annotations

from typing import Any

import pytest

from careledger.chain.executor import nonce_key
from careledger.contracts import governance, identity
from careledger.core.errors import AuthError, Code
from support import Consortium, Ledger, make_consortium, seeded_key

NEWCOMER = seeded_key("gov/newcomer-admin")
NEW_ORG = {"admins": [NEWCOMER.public_hex], "id": "st-luke", "name": "St Luke's", "roles": ["hospital"]}
ADD = {"kind": "add_organisation", "organisation": NEW_ORG}
VOTERS = ("clinic", "pharmacy", "manufacturer", "distributor", "insurer", "research", "regulator")


def open_proposal(ledger: Ledger, action: dict[str, Any], org: str = "hospital") -> str:
    receipt = ledger.propose(org, action)
    assert receipt.code == 0, receipt.message
    assert receipt.result["status"] == "open"
    return str(receipt.result["proposal"])


def proposal(ledger: Ledger, pid: str) -> dict[str, Any]:
    return ledger.get(governance.proposal_key(pid))  # type: ignore[no-any-return]


# -- the 2/3 threshold -------------------------------------------------------------------------------

def test_add_organisation_needs_more_than_two_thirds(consortium: Consortium, ledger: Ledger) -> None:
    receipt = ledger.propose("hospital", ADD, "admit St Luke's")
    pid = receipt.result["proposal"]
    assert pid == "gp-" + receipt.tx[:24]
    assert receipt.events[0] == {"attrs": {"kind": "add_organisation", "proposal": pid}, "type": "proposal_opened"}
    rec = proposal(ledger, pid)
    assert rec["yes"] == ["hospital"] and rec["no"] == [] and rec["status"] == "open"
    assert rec["opened"] == 1 and rec["expires"] == 1 + consortium.genesis.params.proposal_ttl_blocks
    assert rec["proposer_org"] == "hospital" and rec["action"] == {**ADD, "organisation": {
        **NEW_ORG, "api": None, "gs1_company_prefixes": []}}
    # 2..5 yes of 8: not enough (3 * 5 = 15 is not > 16)
    for n, org in enumerate(VOTERS[:4], start=2):
        receipt = ledger.vote(org, pid)
        assert receipt.code == 0
        assert receipt.result == {"no": 0, "proposal": pid, "status": "open", "yes": n}
        assert identity.get_org(ledger.state, "st-luke") is None
    assert proposal(ledger, pid)["yes"] == sorted(["hospital", *VOTERS[:4]])
    # the sixth yes passes it, in that very transaction
    receipt = ledger.vote(VOTERS[4], pid)
    assert receipt.code == 0 and receipt.result["status"] == "executed" and receipt.result["yes"] == 6
    assert [e["type"] for e in receipt.events] == ["proposal_vote", "organisation_added", "proposal_executed"]
    assert proposal(ledger, pid)["status"] == "executed" and proposal(ledger, pid)["closed"] == ledger.height
    added = identity.get_org(ledger.state, "st-luke")
    assert added is not None and added.status == "active" and added.since == ledger.height
    assert ledger.get(identity.key_key(NEWCOMER.public_hex))["org"] == "st-luke"
    # the new admin can act at once, and the consortium now has 9 organisations
    doctor = seeded_key("gov/luke-doctor")
    assert ledger.enrol("st-luke", doctor, ["physician"], admin=NEWCOMER).code == 0
    assert len(governance.active_orgs(ledger.state)) == 9
    # further votes are refused as closed
    assert ledger.vote(VOTERS[5], pid).code == Code.PROPOSAL_CLOSED


def test_rejected_once_passing_is_impossible(ledger: Ledger) -> None:
    pid = open_proposal(ledger, ADD)
    assert ledger.vote("clinic", pid, approve=False).result["status"] == "open"
    assert ledger.vote("pharmacy", pid, approve=False).result["status"] == "open"
    # with 3 no of 8 at most 5 yes remain possible: rejected now
    receipt = ledger.vote("insurer", pid, approve=False)
    assert receipt.code == 0 and receipt.result == {"no": 3, "proposal": pid, "status": "rejected", "yes": 1}
    assert receipt.events[-1] == {"attrs": {"proposal": pid}, "type": "proposal_rejected"}
    assert proposal(ledger, pid)["no"] == ["clinic", "insurer", "pharmacy"]
    assert ledger.vote("research", pid).code == Code.PROPOSAL_CLOSED
    assert identity.get_org(ledger.state, "st-luke") is None


def test_mixed_votes_reaching_threshold(ledger: Ledger) -> None:
    pid = open_proposal(ledger, ADD)
    assert ledger.vote("clinic", pid, approve=False).code == 0
    assert ledger.vote("pharmacy", pid, approve=False).code == 0
    for org in ("manufacturer", "distributor", "insurer", "research"):
        assert ledger.vote(org, pid).result["status"] == "open"
    assert ledger.vote("regulator", pid).result["status"] == "executed"  # 6 yes, 2 no


def test_already_voted_and_unknown_proposal(consortium: Consortium, ledger: Ledger) -> None:
    pid = open_proposal(ledger, ADD)
    assert ledger.vote("hospital", pid).code == Code.ALREADY_VOTED  # the proposer voted yes by proposing
    assert ledger.vote("clinic", pid, approve=False).code == 0
    before = proposal(ledger, pid)
    admin = consortium.admin("clinic")
    nonce = ledger.committed_nonce(admin)
    assert ledger.vote("clinic", pid).code == Code.ALREADY_VOTED
    assert ledger.vote("clinic", pid, approve=False).code == Code.ALREADY_VOTED
    assert proposal(ledger, pid) == before
    assert ledger.committed_nonce(admin) == nonce + 2  # failed, but included
    unknown = "gp-" + "0" * 24
    receipt = ledger.vote("clinic", unknown)
    assert receipt.code == Code.PROPOSAL_UNKNOWN
    assert ledger.get(governance.proposal_key(unknown)) is None


def test_only_admins_take_part(consortium: Consortium, ledger: Ledger) -> None:
    pid = open_proposal(ledger, ADD)
    nurse = seeded_key("gov/nurse")
    assert ledger.enrol("clinic", nurse, ["nurse"]).code == 0
    assert ledger.run(nurse, "governance.vote", {"approve": True, "proposal": pid}).code == Code.UNAUTHORISED
    assert ledger.run(nurse, "governance.propose", {"action": ADD, "title": "t"}).code == Code.UNAUTHORISED
    assert proposal(ledger, pid)["yes"] == ["hospital"]


def test_failed_proposal_writes_nothing_but_the_nonce(consortium: Consortium, ledger: Ledger) -> None:
    admin = consortium.admin("clinic")
    existing = {**NEW_ORG, "id": "pharmacy"}
    outcome = ledger.block(ledger.tx(admin, "governance.propose",
                                     {"action": {"kind": "add_organisation", "organisation": existing}, "title": "t"}))
    assert outcome.codes == [Code.ALREADY_EXISTS]
    assert outcome.result.changes == {nonce_key(admin.public_hex): b"1"}
    reused_key = {**NEW_ORG, "admins": [consortium.admin("regulator").public_hex]}
    assert ledger.propose("clinic", {"kind": "add_organisation", "organisation": reused_key}).code == Code.KEY_IN_USE
    unknown = {"kind": "set_org_roles", "org": "nosuch", "roles": ["clinic"]}
    assert ledger.propose("clinic", unknown).code == Code.ORG_UNKNOWN
    assert list(ledger.state.scan_raw("governance/proposal/")) == []


def test_proposal_that_became_impossible_closes_as_failed(ledger: Ledger) -> None:
    first = open_proposal(ledger, ADD, "hospital")
    second = open_proposal(ledger, ADD, "clinic")
    for org in ("clinic", "pharmacy", "manufacturer", "distributor", "insurer"):
        assert ledger.vote(org, first).code == 0
    assert proposal(ledger, first)["status"] == "executed"
    for org in ("hospital", "pharmacy", "manufacturer", "distributor"):
        assert ledger.vote(org, second).result["status"] == "open"
    # St Luke's now counts too: 6 yes of 9 is not enough (18 is not > 18), 7 is
    assert ledger.vote("insurer", second).result["status"] == "open"
    receipt = ledger.vote("research", second)
    assert receipt.code == 0 and receipt.result["status"] == "failed"
    assert proposal(ledger, second)["failure_code"] == Code.ALREADY_EXISTS
    assert receipt.events[-1] == {"attrs": {"code": int(Code.ALREADY_EXISTS), "proposal": second},
                                  "type": "proposal_failed"}


# -- removing an organisation ----------------------------------------------------------------------------

def pass_proposal(ledger: Ledger, action: dict[str, Any], proposer: str, voters: tuple[str, ...]) -> dict[str, Any]:
    pid = open_proposal(ledger, action, proposer)
    for org in voters:
        receipt = ledger.vote(org, pid)
        assert receipt.code == 0, receipt.message
        if receipt.result["status"] != "open":
            break
    return proposal(ledger, pid)


def test_remove_organisation_revokes_its_keys(consortium: Consortium, ledger: Ledger) -> None:
    supplier = seeded_key("gov/distributor-operator")
    assert ledger.enrol("distributor", supplier, ["supply_operator"]).code == 0
    action = {"kind": "remove_organisation", "org": "distributor"}
    rec = pass_proposal(ledger, action, "hospital", ("clinic", "pharmacy", "manufacturer", "insurer", "research"))
    assert rec["status"] == "executed"
    org = identity.get_org(ledger.state, "distributor")
    assert org is not None and org.status == "removed" and org.removed_at == ledger.height
    assert governance.active_orgs(ledger.state) == sorted(set(consortium.org_ids) - {"distributor"})
    # the admin and the member: refused at admission and never included
    for key in (consortium.admin("distributor"), supplier):
        assert not identity.resolve_signer(ledger.state, key.public_hex).active
        raw = ledger.tx(key, "identity.set_org_api", {"api": None, "org": "distributor"})
        with pytest.raises(AuthError) as err:
            ledger.admit(raw)
        assert err.value.code == Code.SIGNER_REVOKED
        assert ledger.refused(raw).code == Code.SIGNER_REVOKED
    # with 7 active organisations, 5 yes now suffice (3 * 5 = 15 > 14)
    rec = pass_proposal(ledger, {"kind": "set_org_roles", "org": "clinic", "roles": ["clinic", "research"]},
                        "clinic", ("pharmacy", "manufacturer", "insurer", "research"))
    assert rec["status"] == "executed" and len(rec["yes"]) == 5
    clinic = identity.get_org(ledger.state, "clinic")
    assert clinic is not None and clinic.roles == ("clinic", "research")
    assert ledger.get(identity.org_key("clinic"))["roles"] == ["clinic", "research"]
    assert ledger.enrol("clinic", seeded_key("gov/clinic-researcher"), ["researcher"]).code == 0
    # a removed organisation cannot be removed again
    assert ledger.propose("hospital", action).code == Code.ORG_INACTIVE


def test_votes_of_a_removed_organisation_stop_counting(ledger: Ledger) -> None:
    pid = open_proposal(ledger, ADD, "distributor")
    for org in ("clinic", "pharmacy", "manufacturer"):
        assert ledger.vote(org, pid).code == 0  # 4 yes including the distributor
    assert pass_proposal(ledger, {"kind": "remove_organisation", "org": "distributor"}, "hospital",
                         ("clinic", "pharmacy", "manufacturer", "insurer", "research"))["status"] == "executed"
    # 7 active: the distributor's yes no longer counts: clinic, pharmacy, manufacturer + insurer = 4, not > 14/3
    assert ledger.vote("insurer", pid).result["status"] == "open"
    assert ledger.vote("hospital", pid).result["status"] == "executed"


def test_cannot_remove_the_only_validators_org(ledger: Ledger) -> None:
    # the hospital runs the only validator
    assert ledger.propose("clinic", {"kind": "remove_organisation", "org": "hospital"}).code == Code.PROPOSAL_INVALID


# -- validators ----------------------------------------------------------------------------------------

def test_set_validator_adds_and_removes(consortium: Consortium, ledger: Ledger) -> None:
    new_validator = seeded_key("gov/validator-2").public_hex
    voters = ("hospital", "pharmacy", "manufacturer", "distributor", "insurer")
    pid = open_proposal(ledger, {"kind": "set_validator", "org": "clinic", "power": 5, "pub_key": new_validator},
                        "clinic")
    for org in voters[:-1]:
        assert ledger.vote(org, pid).code == 0
    outcome = ledger.block(ledger.tx(consortium.admin(voters[-1]), "governance.vote",
                                     {"approve": True, "proposal": pid}))
    assert outcome.codes == [0]
    assert {"attrs": {"power": 5, "pub_key": new_validator}, "type": "validator_update"} in outcome.receipts[0].events
    assert outcome.result.validator_updates == [{"power": 5, "pub_key": new_validator}]
    assert ledger.get(governance.validator_key(new_validator)) == {"org": "clinic", "power": 5}
    assert sorted(pub for pub, _ in governance.validators(ledger.state)) == \
        sorted([new_validator, consortium.validator.public_hex])
    # another organisation cannot claim that key
    taken = {"kind": "set_validator", "org": "pharmacy", "power": 1, "pub_key": new_validator}
    assert ledger.propose("pharmacy", taken).code == Code.KEY_IN_USE
    # power 0 removes it
    pid = open_proposal(ledger, {"kind": "set_validator", "org": "clinic", "power": 0, "pub_key": new_validator},
                        "clinic")
    for org in voters[:-1]:
        ledger.vote(org, pid)
    outcome = ledger.block(ledger.tx(consortium.admin(voters[-1]), "governance.vote",
                                     {"approve": True, "proposal": pid}))
    assert outcome.result.validator_updates == [{"power": 0, "pub_key": new_validator}]
    assert ledger.get(governance.validator_key(new_validator)) is None
    assert outcome.result.changes[governance.validator_key(new_validator)] is None  # a deletion in the changeset
    # removing the last validator, or one that does not exist, is refused when proposed
    last = {"kind": "set_validator", "org": "hospital", "power": 0, "pub_key": consortium.validator.public_hex}
    assert ledger.propose("hospital", last).code == Code.PROPOSAL_INVALID
    missing = {"kind": "set_validator", "org": "clinic", "power": 0, "pub_key": new_validator}
    assert ledger.propose("clinic", missing).code == Code.NOT_FOUND


def test_removing_an_organisation_emits_validator_removals(consortium: Consortium) -> None:
    ledger = Ledger(consortium)
    second = seeded_key("gov/validator-clinic").public_hex
    assert pass_proposal(ledger, {"kind": "set_validator", "org": "clinic", "power": 3, "pub_key": second},
                         "clinic", ("hospital", "pharmacy", "manufacturer", "distributor", "insurer"))["status"] == \
        "executed"
    pid = open_proposal(ledger, {"kind": "remove_organisation", "org": "clinic"}, "hospital")
    for org in ("pharmacy", "manufacturer", "distributor", "insurer"):
        ledger.vote(org, pid)
    outcome = ledger.block(ledger.tx(consortium.admin("research"), "governance.vote",
                                     {"approve": True, "proposal": pid}))
    assert outcome.result.validator_updates == [{"power": 0, "pub_key": second}]
    assert [pub for pub, _ in governance.validators(ledger.state)] == [consortium.validator.public_hex]


# -- expiry and small consortia ------------------------------------------------------------------------------

def test_proposal_expires() -> None:
    consortium = make_consortium(("alpha", "beta", "gamma", "delta"), ("hospital", "clinic", "insurer", "regulator"),
                                 params={"proposal_ttl_blocks": 2})
    ledger = Ledger(consortium)
    pid = open_proposal(ledger, ADD, "alpha")  # height 1, expires after height 3
    assert proposal(ledger, pid)["expires"] == 3
    assert ledger.vote("beta", pid).result["status"] == "open"  # height 2: 2 of 4
    ledger.block()  # height 3 passes without a vote
    receipt = ledger.vote("gamma", pid)  # height 4
    assert receipt.code == Code.PROPOSAL_CLOSED
    assert identity.get_org(ledger.state, "st-luke") is None
    assert proposal(ledger, pid)["yes"] == ["alpha", "beta"]


def test_vote_on_the_last_valid_height_counts() -> None:
    consortium = make_consortium(("alpha", "beta", "gamma", "delta"), ("hospital", "clinic", "insurer", "regulator"),
                                 params={"proposal_ttl_blocks": 2})
    ledger = Ledger(consortium)
    pid = open_proposal(ledger, ADD, "alpha")
    assert ledger.vote("beta", pid).result["status"] == "open"
    assert ledger.vote("gamma", pid).result["status"] == "executed"  # height 3 == expires: still open


def test_single_organisation_decides_alone() -> None:
    consortium = make_consortium(("solo",), ("hospital",))
    ledger = Ledger(consortium)
    receipt = ledger.propose("solo", ADD)
    assert receipt.code == 0 and receipt.result["status"] == "executed"
    assert identity.is_org_active(ledger.state, "st-luke")
    # and the last organisation can never be removed
    ledger2 = Ledger(consortium)
    assert ledger2.propose("solo", {"kind": "remove_organisation", "org": "solo"}).code == Code.PROPOSAL_INVALID


def test_exactly_two_thirds_is_not_enough() -> None:
    six = make_consortium(("o1", "o2", "o3", "o4", "o5", "o6"),
                          ("hospital", "clinic", "pharmacy", "insurer", "research", "regulator"))
    ledger = Ledger(six)
    pid = open_proposal(ledger, ADD, "o1")
    for org in ("o2", "o3", "o4"):
        assert ledger.vote(org, pid).result["status"] == "open"  # 4 of 6 is exactly 2/3: not more
    assert ledger.vote("o5", pid).result["status"] == "executed"
    # and a proposal whose best case is exactly 2/3 is rejected at once
    three = make_consortium(("o1", "o2", "o3"), ("hospital", "clinic", "pharmacy"))
    ledger = Ledger(three)
    pid = open_proposal(ledger, ADD, "o1")
    assert ledger.vote("o2", pid, approve=False).result["status"] == "rejected"
