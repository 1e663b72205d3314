"""A consortium with the research contract, a hospital vault, a research desk, patients and their study keys.

Everything real: blocks executed by the in-memory :class:`conftest.Ledger`, records sealed in a real
SQLite :class:`~careledger.vault.store.Vault` and anchored by ``records.anchor``, research consent
signed with keys derived from each patient's seed, linkage statements verified by the desk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from careledger.chain.executor import Chain
from careledger.chain.registry import default_registry
from careledger.contracts.identity import compute_pseudonym
from careledger.contracts.research.study_keys import (
    derive_study_key,
    make_linkage_statement,
    scope_info,
    study_pseudonym,
)
from careledger.core.crypto import SigningKey
from careledger.research.custodian import LinkageStore, ResearchDesk
from careledger.samples import synthea_bundles
from careledger.vault.canonical import canonical_bytes, parse_exact
from careledger.vault.store import Vault, new_record_id
from support import CHAIN_ID, GENESIS_TIME_MS, Consortium, Ledger, make_consortium, seeded_key

DATA = Path(__file__).resolve().parent.parent / "data"  # tests/data
SYNTHEA = synthea_bundles()
DAY_MS = 86_400_000


def research_chain(consortium: Consortium) -> Chain:
    return Chain(consortium.genesis, default_registry())


def synthea_resources(path: Path) -> list[dict[str, Any]]:
    bundle = parse_exact(path.read_bytes())
    return [e["resource"] for e in bundle["entry"]]


def study_spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "sponsor": "research", "title": "Cardiometabolic outcomes", "category": "cardiometabolic",
        "ethics_ref": "IRB-2025-117", "purpose": "HRESCH",
        "period": {"start_ms": GENESIS_TIME_MS, "end_ms": GENESIS_TIME_MS + 400 * DAY_MS},
        "request": {"resource_types": ["Condition", "Encounter", "Immunization", "MedicationRequest", "Observation",
                                       "Patient", "Procedure"]},
        "anonymity": {"k": 5, "quasi_identifiers": ["birth_year", "sex", "zip3"]},
    }
    spec.update(over)
    return spec


def version_spec(**over: Any) -> dict[str, Any]:
    """A ``research.new_version`` spec (a study spec without the sponsor, which never changes)."""
    spec = study_spec(**over)
    del spec["sponsor"]
    return spec


@dataclass
class Person:
    key: SigningKey
    pseudonym: str
    resources: list[dict[str, Any]]
    records: list[str] = field(default_factory=list)

    def study_key(self, scope: str, target: str) -> SigningKey:
        return derive_study_key(self.key.seed, scope_info(scope, target))


class World:
    """One ledger, a hospital vault and desk, a researcher and a steward."""

    def __init__(self, tmp: Path) -> None:
        self.consortium = make_consortium()
        self.ledger = Ledger(self.consortium, research_chain(self.consortium))
        self.researcher = seeded_key("research/researcher")
        self.ledger.enrol("research", self.researcher, ["researcher"])
        self.vault = Vault.create(tmp / "vault-hospital", "hospital")
        self.ledger.enrol("hospital", self.vault.gateway_key, ["data_steward"])
        self.desk = ResearchDesk(self.vault, CHAIN_ID, linkages=LinkageStore(":memory:"))
        self.people: list[Person] = []

    @property
    def view(self) -> Any:
        return self.ledger.state

    @property
    def as_of_day(self) -> int:
        return (GENESIS_TIME_MS + self.ledger.height * 1000) // DAY_MS

    def ok(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        receipt = self.ledger.run(key, tx_type, payload)
        assert receipt.code == 0, receipt.message
        return dict(receipt.result)

    def register_study(self, **over: Any) -> str:
        return str(self.ok(self.researcher, "research.register_study", study_spec(**over))["study"])

    def add_patient(self, label: str, resources: list[dict[str, Any]]) -> Person:
        key = seeded_key(f"research/patient/{label}")
        self.ledger.register_patient(key)
        person = Person(key, compute_pseudonym(key.public_hex), resources)
        sealed = []
        for r in resources:
            record = new_record_id()
            sealed.append(self.vault.seal(record, 1, person.pseudonym, r["resourceType"], canonical_bytes(r)))
            person.records.append(record)
        self.vault.put_pending(sealed)
        for i in range(0, len(sealed), 256):
            anchors = [{"commitment": s.commitment, "pseudonym": s.pseudonym, "record": s.record, "type": s.type,
                        "version": 1} for s in sealed[i:i + 256]]
            self.ok(self.vault.gateway_key, "records.anchor", {"anchors": anchors, "custodian": "hospital"})
        self.vault.mark_anchored([(s.record, s.version) for s in sealed])
        self.people.append(person)
        return person

    def opt_in(self, person: Person, scope: str, target: str, link: bool = True) -> str:
        """The patient consents with her study key and hands the custodian her linkage statement."""
        consent = self.ok(person.study_key(scope, target), "research.consent", {"scope": scope, "target": target})
        if link:
            self.desk.accept_linkage(self.view, make_linkage_statement(person.key, CHAIN_ID, scope, target, "hospital",
                                                                       GENESIS_TIME_MS))
        return str(consent["consent"])

    def anchor_release(self, built: Any) -> str:
        result = self.ok(self.vault.gateway_key, "research.release", self.desk.release_payload(built))
        for payload in self.desk.subject_payloads(built, result["release"]):
            self.ok(self.vault.gateway_key, "research.release_subjects", payload)
        return str(result["release"])


def subject_of(person: Person, scope: str, target: str) -> str:
    return study_pseudonym(person.study_key(scope, target))


def dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
