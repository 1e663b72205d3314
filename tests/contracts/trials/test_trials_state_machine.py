"""The trials contract as a state machine (hypothesis, seeded): random consents, enrolments, visits,
amendments and a lock, each checked against a model of the rules, with invariants after every block:
the anchor tree's root is RFC 6962's over the anchored leaves, allocation slots follow enrolments,
and the subjects awaiting re-consent are exactly those the model expects."""

from __future__ import annotations

import hashlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from careledger.contracts import trials as contract
from careledger.core.errors import Code
from careledger.trials.anchor_tree import AnchorTree
from support.trials import FORM_V1, make_world

NAMES = st.sampled_from(["p0", "p1", "p2"])
STRATA = st.sampled_from(["hospital|50-64", "hospital|65-85"])


def _form(version: int) -> str:
    return FORM_V1 if version == 1 else hashlib.sha256(f"form {version}".encode()).hexdigest()


class TrialMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.w = make_world()
        self.trial = self.w.registered_trial()
        self.version = 1  # current protocol version
        self.reconsent = 1  # last version requiring (re-)consent
        self.locked = False
        self.consents: dict[str, int] = {}
        self.enrolled: dict[str, str] = {}  # name -> stratum
        self.visits: dict[str, int] = {}
        self.leaves = 0

    @rule(name=NAMES, stale=st.booleans())
    def consent(self, name: str, stale: bool) -> None:
        version = self.version - 1 if stale and self.version > 1 else self.version
        code = self.w.consent(name, self.trial, version, _form(version)).code
        if self.locked:
            expected = Code.TRIAL_LOCKED
        elif version < self.version:
            expected = Code.TRIAL_CONSENT_STALE
        elif self.consents.get(name) == version:
            expected = Code.TRIAL_STATUS_INVALID
        else:
            expected = Code.OK
            self.consents[name] = version
        assert code == expected

    @rule(name=NAMES, stratum=STRATA)
    def enrol(self, name: str, stratum: str) -> None:
        code = self.w.enrol(name, self.trial, stratum).code
        if self.locked:
            expected = Code.TRIAL_LOCKED
        elif name not in self.consents:
            expected = Code.TRIAL_CONSENT_REQUIRED
        elif self.consents[name] < self.reconsent:
            expected = Code.TRIAL_CONSENT_STALE
        elif name in self.enrolled:
            expected = Code.TRIAL_SUBJECT_ENROLLED
        else:
            expected = Code.OK
            self.enrolled[name] = stratum
        assert code == expected

    @rule(name=NAMES)
    def visit(self, name: str) -> None:
        n = self.visits.get(name, 0) + 1
        commitment = hashlib.sha256(f"{name} visit {n}".encode()).hexdigest()
        code = self.w.run(self.w.steward, "trials.record_visits",
                          self.w.visit_payload(self.trial, name, f"v{n}", [commitment])).code
        if self.locked:
            expected = Code.TRIAL_LOCKED
        elif name not in self.enrolled:
            expected = Code.TRIAL_SUBJECT_UNKNOWN
        elif self.consents[name] < self.reconsent:
            expected = Code.TRIAL_RECONSENT_REQUIRED
        else:
            expected = Code.OK
            self.visits[name] = n
            self.leaves += 1
        assert code == expected

    @rule(reconsent=st.booleans())
    def amend(self, reconsent: bool) -> None:
        version = self.version + 1
        document = hashlib.sha256(f"doc {version}".encode()).hexdigest()
        code = self.w.run(self.w.sponsor, "trials.amend_protocol", {
            "trial": self.trial, "version": version, "document_hash": document, "consent_form_hash": _form(version),
            "reason": "amendment", "reconsent_required": reconsent}).code
        if self.locked:
            assert code == Code.TRIAL_LOCKED
            return
        assert code == Code.OK
        self.version = version
        if reconsent:
            self.reconsent = version

    @rule()
    def lock(self) -> None:
        if self.leaves < 3:  # lock late in a run, so most runs exercise the open trial
            return
        code = self.w.run(self.w.sponsor, "trials.lock", {"trial": self.trial}).code
        assert code == (Code.TRIAL_LOCKED if self.locked else Code.OK)
        self.locked = True

    @invariant()
    def tree_matches_anchors(self) -> None:
        size, root = contract.anchor_root(self.w.ledger.state, self.trial)
        leaves = contract.anchor_leaves(self.w.ledger.state, self.trial)
        assert size == len(leaves) == self.leaves
        tree = AnchorTree()
        for leaf in leaves:
            tree.append_data(leaf)
        assert tree.root() == root
        status = contract.get_status(self.w.ledger.state, self.trial)
        assert status is not None
        if status.lock is not None:
            assert status.lock.root == root.hex() and status.lock.size == size

    @invariant()
    def slots_follow_enrolments(self) -> None:
        status = contract.get_status(self.w.ledger.state, self.trial)
        assert status is not None
        counts: dict[str, int] = {}
        for stratum in self.enrolled.values():
            counts[stratum] = counts.get(stratum, 0) + 1
        assert dict(status.next_slot) == counts and status.enrolled == len(self.enrolled)

    @invariant()
    def awaiting_reconsent(self) -> None:
        expected = sorted(self.w.subject(n, self.trial) for n in self.enrolled if self.consents[n] < self.reconsent)
        assert sorted(contract.subjects_awaiting_reconsent(self.w.ledger.state, self.trial)) == expected


TrialMachine.TestCase.settings = settings(max_examples=15, stateful_step_count=30, derandomize=True, deadline=None)
TestTrialMachine = TrialMachine.TestCase
