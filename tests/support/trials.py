"""A trial world for the trials tests: a consortium ledger with the trials contract, a sponsor, sites,
patients with their study keys, the sponsor's allocation schedule, and a clock that can jump.

The registration data set is synthetic (no real trial is described); the visit data are the vendored
Synthea Observations (``careledger.samples``), sealed by a real site vault.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from careledger.chain.executor import Chain
from careledger.chain.registry import default_registry
from careledger.contracts import trials as trials_contract
from careledger.contracts.research.study_keys import compute_study_pseudonym, derive_study_key
from careledger.contracts.trials.safety import DAY_MS
from careledger.core.block import BlockEnv, Receipt
from careledger.core.crypto import SigningKey
from careledger.samples import synthea_bundles
from careledger.trials.randomisation import AllocationSchedule, generate_schedule
from careledger.vault.canonical import parse_exact
from support import GENESIS_TIME_MS, Ledger, make_consortium, seeded_key

DOC_V1 = hashlib.sha256(b"protocol v1").hexdigest()
FORM_V1 = hashlib.sha256(b"consent form v1").hexdigest()
DOC_V2 = hashlib.sha256(b"protocol v2").hexdigest()
FORM_V2 = hashlib.sha256(b"consent form v2").hexdigest()
STRATA = ("clinic|50-64", "clinic|65-85", "hospital|50-64", "hospital|65-85")
SPONSOR_SEED = hashlib.sha256(b"careledger-test/sponsor randomisation seed").digest()


def synthea_observations(limit: int = 40) -> list[dict[str, Any]]:
    """Observations from the vendored Synthea bundles (synthetic patients), as exact FHIR JSON (decimals kept
    as their source text, as the vault reads them)."""
    out: list[dict[str, Any]] = []
    for path in synthea_bundles():
        bundle = parse_exact(path.read_bytes())
        out += [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    return out[:limit]


def sample_dataset(**changes: Any) -> dict[str, Any]:
    """A complete, synthetic WHO TRDS data set for a randomised, double-blind trial."""
    ds: dict[str, Any] = {
        "secondary_ids": [{"issuer": "Sponsor protocol number", "id": "KNEE-APP-01"}],
        "funding_sources": ["Research institute endowment fund"],
        "primary_sponsor": "Research organisation",
        "secondary_sponsors": ["Hospital organisation"],
        "public_contact": {"name": "Trial office", "affiliation": "Research organisation",
                           "email": "trials@research.example.org", "phone": "+44 20 7946 0000"},
        "scientific_contact": {"name": "Chief investigator's office", "email": "ci@research.example.org"},
        "public_title": "A home exercise app for knee pain after knee replacement",
        "scientific_title": "Randomised, double-blind, sham-controlled trial of an app-guided home exercise "
                            "programme after total knee arthroplasty",
        "acronym": "KNEE-APP",
        "countries": ["GB", "FR"],
        "conditions": [{"text": "Primary osteoarthritis of knee", "system": "http://hl7.org/fhir/sid/icd-10",
                        "code": "M17.1"}],
        "arms": [{"label": "app", "type": "experimental", "description": "App-guided exercise, 12 weeks"},
                 {"label": "sham", "type": "sham_comparator", "description": "App with general advice only"}],
        "interventions": [
            {"name": "Exercise app", "type": "device", "description": "Guided daily exercises", "arms": ["app"]},
            {"name": "Sham app", "type": "device", "description": "General advice, no exercises", "arms": ["sham"],
             "comparator": True}],
        "eligibility": {"inclusion": ["Primary total knee arthroplasty within the last 6 weeks"],
                        "exclusion": ["Revision arthroplasty"], "sex": "all",
                        "min_age": {"value": 50, "unit": "years"}, "max_age": {"value": 85, "unit": "years"},
                        "healthy_volunteers": False},
        "design": {"type": "interventional", "allocation": "randomised", "masking": "double",
                   "assignment": "parallel", "purpose": "treatment", "phase": "not_applicable"},
        "first_enrolment": {"date": "2023-11-20", "type": "anticipated"},
        "sample_size": {"target": 12},
        "recruitment_status": "recruiting",
        "primary_outcomes": [{"id": "P1", "measure": "Knee pain", "method": "Numerical rating scale 0-10",
                              "time_frame": "12 weeks", "analysis": "ANCOVA adjusted for baseline pain"}],
        "secondary_outcomes": [
            {"id": "S1", "measure": "Knee range of motion", "method": "Goniometer, degrees", "time_frame": "12 weeks"},
            {"id": "S2", "measure": "Knee function", "method": "KOOS function score", "time_frame": "12 weeks"}],
        "ethics_reviews": [{"status": "approved", "committee": "Research organisation ethics committee",
                            "contact": "ethics@research.example.org", "approval_date": "2023-10-02",
                            "reference": "REC-23-117"}],
        "completion": {"primary": {"date": "2024-06-30", "type": "anticipated"},
                       "study": {"date": "2024-12-31", "type": "anticipated"}},
        "ipd_sharing": {"plan": "yes", "description": "De-identified data on request after publication"},
    }
    for path, value in changes.items():
        node = ds
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return ds


class TimedLedger(Ledger):
    """The in-memory ledger, with a clock that :meth:`jump` moves forward between blocks."""

    offset_ms = 0

    def env(self, height: int | None = None) -> BlockEnv:
        env = super().env(height)
        return BlockEnv(env.chain_id, env.height, env.time_ms + self.offset_ms, env.proposer)

    def next_time_ms(self) -> int:
        return self.env().time_ms

    def jump(self, ms: int) -> None:
        self.offset_ms += ms

    def jump_to(self, time_ms: int) -> None:
        """Make the next block's time exactly ``time_ms``."""
        self.offset_ms += time_ms - self.next_time_ms()


def trials_chain(consortium: Any) -> Chain:
    return Chain(consortium.genesis, default_registry())


@dataclass
class World:
    ledger: TimedLedger
    sponsor: SigningKey
    investigator: SigningKey
    steward: SigningKey
    clinic_investigator: SigningKey
    outsider: SigningKey
    schedule: AllocationSchedule
    patients: dict[str, SigningKey] = field(default_factory=dict)

    # -- plumbing ---------------------------------------------------------------------------------------
    def run(self, key: SigningKey, tx: str, payload: dict[str, Any]) -> Receipt:
        return self.ledger.run(key, tx, payload)

    def ok(self, key: SigningKey, tx: str, payload: dict[str, Any]) -> Any:
        r = self.run(key, tx, payload)
        assert r.code == 0, f"{tx} failed: {r.code} {r.message}"
        return r.result

    # -- registration -----------------------------------------------------------------------------------
    def register(self, dataset: dict[str, Any] | None = None, *, randomised: bool = True) -> str:
        payload: dict[str, Any] = {"dataset": dataset or sample_dataset(),
                                   "protocol": {"document_hash": DOC_V1, "consent_form_hash": FORM_V1}}
        if randomised:
            c = self.schedule.commitment()
            payload["randomisation"] = {"root": c.root.hex(), "strata": [{"name": s, "slots": n} for s, n in c.strata]}
        trial: str = self.ok(self.sponsor, "trials.register", payload)["trial"]
        return trial

    def add_sites(self, trial: str) -> None:
        ethics = {"status": "approved", "committee": "Hospital ethics committee", "contact": "rec@hospital.example",
                  "approval_date": "2023-10-20", "reference": "H-REC-88"}
        self.ok(self.sponsor, "trials.add_site", {
            "trial": trial, "org": "hospital", "ethics": ethics,
            "investigators": [{"key": self.investigator.public_hex, "role": "principal_investigator"}]})
        self.ok(self.sponsor, "trials.add_site", {
            "trial": trial, "org": "clinic", "ethics": {**ethics, "committee": "Clinic ethics committee"},
            "investigators": [{"key": self.clinic_investigator.public_hex, "role": "principal_investigator"}]})

    def registered_trial(self) -> str:
        trial = self.register()
        self.add_sites(trial)
        return trial

    # -- subjects -----------------------------------------------------------------------------------------
    def patient(self, name: str) -> SigningKey:
        if name not in self.patients:
            self.patients[name] = seeded_key(f"patient/{name}")
        return self.patients[name]

    def study_key(self, name: str, trial: str) -> SigningKey:
        return derive_study_key(self.patient(name).seed, trial)

    def subject(self, name: str, trial: str) -> str:
        return compute_study_pseudonym(self.study_key(name, trial).public_hex)

    def consent(self, name: str, trial: str, version: int = 1, form: str = FORM_V1) -> Receipt:
        return self.run(self.study_key(name, trial), "trials.consent",
                        {"trial": trial, "protocol_version": version, "consent_form_hash": form})

    def reveal(self, trial: str, stratum: str, *, sealed: bool = True, index: int | None = None) -> dict[str, Any]:
        status = trials_contract.get_status(self.ledger.state, trial)
        assert status is not None
        k = status.slot(stratum) if index is None else index
        return self.schedule.reveal(stratum, k, sealed=sealed).to_json()

    def enrol_payload(self, name: str, trial: str, stratum: str = "hospital|50-64", site: str = "hospital",
                      **allocation: Any) -> dict[str, Any]:
        alloc = self.reveal(trial, stratum) | allocation
        return {"trial": trial, "site": site, "subject": self.subject(name, trial), "allocation": alloc}

    def enrol(self, name: str, trial: str, stratum: str = "hospital|50-64", site: str = "hospital") -> Receipt:
        key = self.investigator if site == "hospital" else self.clinic_investigator
        return self.run(key, "trials.enrol", self.enrol_payload(name, trial, stratum, site))

    def visit_payload(self, trial: str, name: str, visit: str, commitments: list[str], site: str = "hospital",
                      version: int = 1, reason: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"subject": self.subject(name, trial), "visit": visit, "version": version,
                                 "resources": [{"type": "Observation", "commitment": c} for c in commitments]}
        if reason is not None:
            entry["reason"] = reason
        return {"trial": trial, "site": site, "visits": [entry]}

    def snapshot(self) -> dict[str, bytes]:
        """Committed state without the nonces (a refused transaction still consumes its nonce)."""
        return {k: v for k, v in self.ledger.snapshot().items() if not k.startswith("nonce/")}


def make_world() -> World:
    consortium = make_consortium()
    ledger = TimedLedger(consortium, trials_chain(consortium))
    sponsor, investigator = seeded_key("research/coordinator"), seeded_key("hospital/investigator")
    steward, clinic_investigator = seeded_key("hospital/steward"), seeded_key("clinic/investigator")
    outsider = seeded_key("hospital/nurse")
    assert ledger.enrol("research", sponsor, ["trial_coordinator"]).code == 0
    assert ledger.enrol("hospital", investigator, ["physician"]).code == 0
    assert ledger.enrol("hospital", steward, ["data_steward"]).code == 0
    assert ledger.enrol("hospital", outsider, ["nurse"]).code == 0
    assert ledger.enrol("clinic", clinic_investigator, ["physician"]).code == 0
    schedule = generate_schedule(SPONSOR_SEED, STRATA, ["app", "sham"], [1, 1], [2, 4], 8)
    return World(ledger, sponsor, investigator, steward, clinic_investigator, outsider, schedule)


def day_start(ms: int) -> int:
    return ms // DAY_MS * DAY_MS


__all__ = ["DOC_V1", "DOC_V2", "FORM_V1", "FORM_V2", "GENESIS_TIME_MS", "STRATA", "TimedLedger", "World",
           "day_start", "make_world", "sample_dataset", "synthea_observations", "trials_chain"]
