"""A research consortium over real HTTP: a node (solo engine, SQLite) with its API on loopback, the
hospital's and the clinic's vaults under ``HOME/vault`` (gateway keys enrolled as data stewards), a
researcher of the research institute, and generated patients whose records were stored through the
gateway like any custodian's (no shortcut into the vaults).

Used by tests/api/test_research_api.py and tests/cli/test_research_cli.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from careledger.client.records import RecordsClient
from careledger.client.research import ResearchClient, study_key
from careledger.contracts.identity import compute_pseudonym
from careledger.core.crypto import SigningKey
from careledger.node.solo import Node
from careledger.research.synthetic import generate_patient
from careledger.vault.canonical import canonical_bytes, json_of_canonical
from careledger.vault.store import Vault
from support import GENESIS_TIME_MS, make_consortium, seeded_key

DAY_MS = 86_400_000
TYPES = ["Condition", "Encounter", "Immunization", "MedicationRequest", "Observation", "Patient", "Procedure"]


@dataclass
class Patient:
    label: str
    key: SigningKey
    custodian: str
    resources: list[dict[str, Any]]

    @property
    def pseudonym(self) -> str:
        return compute_pseudonym(self.key.public_hex)

    def study_key(self, study: str) -> SigningKey:
        return study_key(self.key, "study", study)


@dataclass
class ApiWorld:
    node: Node
    home: Any
    url: str
    client: ResearchClient
    researcher: SigningKey
    stewards: dict[str, SigningKey]
    patients: list[Patient] = field(default_factory=list)
    consents: dict[str, str] = field(default_factory=dict)  # patient label -> consent id

    def ok(self, result: dict[str, Any]) -> dict[str, Any]:
        assert result["receipt"]["code"] == 0, result["receipt"]
        return dict(result["receipt"]["result"])

    def register_study(self, **over: Any) -> str:
        return str(self.ok(self.client.register_study(self.researcher, study_spec(**over)))["study"])

    def add_patients(self, custodian: str, count: int, seed: str, encounters: int = 2) -> list[Patient]:
        """Register ``count`` generated patients and store their records at ``custodian`` (one Bundle each)."""
        writer = RecordsClient(self.client, self.stewards[custodian])  # not closed: it would close self.client
        added = []
        for i in range(count):
            label = f"{seed}-{i}"
            key = seeded_key(f"research-api/patient/{label}")
            self.ok(self.client.send(key, "identity.register_patient", 1, {}))
            resources = generate_patient(seed, i, encounters)
            store(writer, custodian, compute_pseudonym(key.public_hex), resources)
            added.append(Patient(label, key, custodian, resources))
        self.patients += added
        return added

    def opt_in(self, patient: Patient, study: str, link: bool = True) -> str:
        consent = self.ok(self.client.consent(patient.study_key(study), "study", study))["consent"]
        self.consents[patient.label] = consent
        if link:
            self.client.link(patient.key, "study", study, patient.custodian)
        return str(consent)

    def wait_for_answers(self, query: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            answers = self.client.query_record(query)["answers"]
            if len(answers) >= count or time.monotonic() > deadline:
                return list(answers)
            time.sleep(0.05)


def store(writer: RecordsClient, custodian: str, pseudonym: str, resources: list[dict[str, Any]]) -> None:
    """Store a patient's resources (in the vault's exact form) as one collection Bundle through the gateway."""
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    writer.store(custodian, pseudonym, json_of_canonical(canonical_bytes(bundle)))


def study_spec(**over: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    spec: dict[str, Any] = {
        "sponsor": "research", "title": "Cardiometabolic outcomes", "category": "cardiometabolic",
        "ethics_ref": "IRB-2026-117", "purpose": "HRESCH",
        "period": {"start_ms": now - DAY_MS, "end_ms": now + 400 * DAY_MS},
        "request": {"resource_types": TYPES},
        "anonymity": {"k": 5, "quasi_identifiers": ["birth_year", "sex", "zip3"]},
    }
    spec.update(over)
    return spec


def build_api_world(node: Node, home: Any, url: str) -> ApiWorld:
    from support.records import send

    stewards = {}
    for org in ("hospital", "clinic"):
        vault = Vault.create(Path(home.path) / "vault" / org, org)
        send(node, seeded_key(f"admin/{org}"), "identity.enrol_member",
             {"member": vault.gateway_key.public_hex, "org": org, "roles": ["data_steward"]})
        vault.close()
        stewards[org] = seeded_key(f"admin/{org}")  # an admin of the custodian: a writer and a steward
    researcher = seeded_key("research-api/researcher")
    send(node, seeded_key("admin/research"), "identity.enrol_member",
         {"member": researcher.public_hex, "org": "research", "roles": ["researcher"]})
    return ApiWorld(node, home, url, ResearchClient(url, timeout=60), researcher, stewards)


@pytest.fixture(name="research_world")
def research_world_fixture(node: Node, node_home: Any) -> Iterator[ApiWorld]:
    """A fresh world for one test."""
    with serving(node, node_home) as w:
        yield w


@contextmanager
def serving(node: Node, home: Any) -> Iterator[ApiWorld]:
    from careledger.api.server import serve_in_thread

    server = serve_in_thread(node)
    w = build_api_world(node, home, server.url)
    try:
        yield w
    finally:
        w.client.close()
        server.stop()


@contextmanager
def shared_world(path: Path) -> Iterator[ApiWorld]:
    """A world (its own consortium, home and node) for a module's tests to share: build once, read often."""
    from careledger.keys import write_key
    from careledger.node.home import init_home

    consortium = make_consortium()
    key_file = path / "validator-key.json"
    write_key(key_file, consortium.validator, "validator")
    home = init_home(path / "home", consortium.write_genesis(path / "genesis.json"), key_file, GENESIS_TIME_MS,
                     chain_id=consortium.chain_id)
    node = home.open_node()
    node.start()
    try:
        with serving(node, home) as w:
            yield w
    finally:
        node.close()
