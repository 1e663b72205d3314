"""Rules versions with activation heights agreed by governance (issue 16, item 11).

A probe contract (registered only here) reports the rules version it sees in ``ctx.params`` and has a
second transaction version that a later rules version introduces. The consortium schedules rules
version 2 at a height; every node, and any replay from genesis, switches at that block.
"""

from __future__ import annotations

from typing import Any

import pytest

from careledger.chain.executor import BlockExecution, Chain, check_admission
from careledger.chain.registry import default_registry
from careledger.contracts.base import Handler, Payload, Registry, TxContext
from careledger.contracts.governance.layout import RULES_KEY
from careledger.contracts.governance.rules import RulesSchedule, rules_version_at
from careledger.core.errors import Code, InvalidTx, LedgerError
from careledger.core.state import Overlay
from support import Consortium, Ledger, seeded_key

VOTERS = ("clinic", "pharmacy", "manufacturer", "distributor", "insurer", "research", "regulator")


class Probe(Payload):
    pass


def _apply_probe(state: Overlay, ctx: TxContext, p: Probe) -> Any:
    return {"rules_version": ctx.params["rules_version"]}


PROBE_V1: Handler[Any] = Handler("test.rules_probe", 1, Probe, _apply_probe, open_to_unregistered=True)
PROBE_V2: Handler[Any] = Handler("test.rules_probe", 2, Probe, _apply_probe, open_to_unregistered=True)


def chain_with_probe(consortium: Consortium, rules_version: int = 2) -> Chain:
    """A release that implements rules version ``rules_version``, where probe v2 needs version 2."""
    registry = Registry([*(default_registry().get(t, v) for t, v in default_registry().kinds()), PROBE_V1, PROBE_V2])
    return Chain(consortium.genesis, registry, rules_version=rules_version,
                 since_rules={("test.rules_probe", 2): 2})


def schedule(ledger: Ledger, version: int, height: int) -> dict[str, Any]:
    """Propose ``schedule_rules`` and vote it through; returns the last receipt's result."""
    receipt = ledger.propose("hospital", {"kind": "schedule_rules", "height": height, "version": version})
    assert receipt.code == 0, receipt.message
    pid = receipt.result["proposal"]
    for org in VOTERS:
        receipt = ledger.vote(org, pid)
        assert receipt.code == 0, receipt.message
        if receipt.result["status"] != "open":
            return dict(receipt.result)
    raise AssertionError("the proposal never closed")


def probe(ledger: Ledger, version: int = 1) -> int:
    key = seeded_key(f"rules/probe/{ledger.height}/{version}")
    receipt = ledger.run(key, "test.rules_probe", {}, version=version)
    assert receipt.code == 0, receipt.message
    return int(receipt.result["rules_version"])


def test_the_rules_version_switches_at_the_agreed_height(consortium: Consortium) -> None:
    ledger = Ledger(consortium, chain_with_probe(consortium))
    assert probe(ledger) == 1  # genesis rules
    activation = ledger.height + 12
    result = schedule(ledger, 2, activation)
    assert result["status"] == "executed"
    assert RulesSchedule.from_json(ledger.get(RULES_KEY)).to_json() == \
        {"activations": [{"height": activation, "version": 2}]}
    while ledger.height + 1 < activation:
        assert probe(ledger) == 1, f"rules changed early, at height {ledger.height + 1}"
    assert ledger.height + 1 == activation
    assert probe(ledger) == 2  # exactly at the agreed block
    assert probe(ledger) == 2
    # a replay from genesis, as verify or a new node does, switches at the same block with the same app hashes
    replay = Ledger(consortium, chain_with_probe(consortium))
    for outcome in ledger.history:
        again = replay.block(*outcome.result.txs)
        assert again.result.app_hash == outcome.result.app_hash
        assert [r.result for r in again.receipts] == [r.result for r in outcome.receipts]


def test_a_transaction_kind_of_a_later_version_is_invalid_until_then(consortium: Consortium) -> None:
    ledger = Ledger(consortium, chain_with_probe(consortium))
    activation = ledger.height + 10
    schedule(ledger, 2, activation)
    early = ledger.tx(seeded_key("rules/early"), "test.rules_probe", {}, version=2)
    with pytest.raises(InvalidTx) as err:
        ledger.admit(early)
    assert err.value.code == Code.RULES_NOT_ACTIVE
    assert ledger.refused(early).code == Code.RULES_NOT_ACTIVE  # and a block leaves it out
    while ledger.height + 1 < activation:
        probe(ledger)
    assert probe(ledger, version=2) == 2


@pytest.mark.parametrize(("version", "height_offset", "words"), [
    (2, 0, "not after the current block"),
    (2, -3, "not after the current block"),
    (1, 10, "version"),  # the payload itself: version >= 2
])
def test_an_activation_in_the_past_or_not_above_genesis_is_refused(consortium: Consortium, ledger: Ledger,
                                                                  version: int, height_offset: int,
                                                                  words: str) -> None:
    for _ in range(4):
        ledger.register_patient(seeded_key(f"rules/p/{ledger.height}"))
    height = ledger.height + 1 + height_offset
    raw = ledger.tx(consortium.admin("hospital"), "governance.propose",
                    {"action": {"kind": "schedule_rules", "height": height, "version": version}, "title": "rules"})
    before = ledger.snapshot()
    if version < 2:
        with pytest.raises(InvalidTx) as err:
            ledger.check(raw)
        assert err.value.code == Code.INVALID_PAYLOAD and words in err.value.message
        return
    receipt = ledger.block(raw).receipts[0]
    assert receipt.code == Code.PROPOSAL_INVALID and words in receipt.message
    changed = {k for k, v in ledger.snapshot().items() if before.get(k) != v}
    assert changed == {f"nonce/{consortium.admin('hospital').public_hex}"}  # only the nonce moved
    assert ledger.get(RULES_KEY) is None


def test_versions_and_heights_only_move_forward(consortium: Consortium, ledger: Ledger) -> None:
    first = ledger.height + 20
    assert schedule(ledger, 2, first)["status"] == "executed"
    for action, words in [({"height": first + 5, "version": 2}, "not above the last scheduled version"),
                          ({"height": first, "version": 3}, "not after the last scheduled activation")]:
        receipt = ledger.propose("hospital", {"kind": "schedule_rules", **action})
        assert receipt.code == Code.PROPOSAL_INVALID and words in receipt.message, receipt.message
    assert schedule(ledger, 3, first + 5)["status"] == "executed"
    sched = RulesSchedule.from_json(ledger.get(RULES_KEY))
    assert [(a.version, a.height) for a in sched.activations] == [(2, first), (3, first + 5)]
    assert [sched.version_at(h) for h in (1, first - 1, first, first + 4, first + 5, first + 99)] == [1, 1, 2, 2, 3, 3]


def test_a_proposal_passing_after_its_activation_height_fails(consortium: Consortium, ledger: Ledger) -> None:
    activation = ledger.height + 4  # the votes take longer than that
    receipt = ledger.propose("hospital", {"kind": "schedule_rules", "height": activation, "version": 2})
    assert receipt.code == 0
    pid = receipt.result["proposal"]
    result: dict[str, Any] = {}
    for org in VOTERS:
        result = ledger.vote(org, pid).result
        if result["status"] != "open":
            break
    assert result["status"] == "failed"
    assert ledger.get(f"governance/proposal/{pid}")["failure_code"] == Code.PROPOSAL_INVALID
    assert ledger.get(RULES_KEY) is None and rules_version_at(ledger.state, ledger.height + 1) == 1


def test_a_release_without_the_version_stops_at_its_height(consortium: Consortium) -> None:
    """Rules version 2 scheduled, but this release implements only version 1: blocks before the
    activation execute; the block at it is refused (UPGRADE_REQUIRED), and so is admission for it."""
    ledger = Ledger(consortium, chain_with_probe(consortium, rules_version=1))
    activation = ledger.height + 12
    schedule(ledger, 2, activation)
    while ledger.height + 1 < activation:
        probe(ledger)
    with pytest.raises(LedgerError) as err:
        BlockExecution(ledger.chain, ledger.state, ledger.env(), ledger.app_hash)
    assert err.value.code == Code.UPGRADE_REQUIRED and "upgrade" in err.value.message
    checked = ledger.check(ledger.tx(consortium.admin("clinic"), "test.rules_probe", {}))
    with pytest.raises(LedgerError) as err:
        check_admission(ledger.chain, ledger.state, ledger.env(), checked, ledger.committed_nonce(
            consortium.admin("clinic")) + 1)
    assert err.value.code == Code.UPGRADE_REQUIRED
