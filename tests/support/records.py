"""Shared set-up for the records, consent, vault and gateway tests (no tests of its own).

:class:`World` is a real node (solo engine, SQLite) with its HTTP API on loopback, vaults for the
hospital and the clinic under ``HOME/vault``, their gateway keys enrolled as data stewards, a
physician at each organisation, an emergency nurse at the clinic, and registered patients.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from careledger.client import Client
from careledger.client.records import RecordsClient
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.node.solo import Node
from careledger.samples import synthea_bundles
from careledger.vault.store import Vault
from support import seeded_key

SYNTHEA_FILES = synthea_bundles()

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
    "valueQuantity": {"value": 72.50, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
}
ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter", "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
}


def send(node: Node, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> Any:
    """Sign with the key's next nonce, submit, wait for commit; returns the receipt."""
    from careledger.vault.ledger import NodeLedger

    nonce = NodeLedger(node).next_nonce(key.public_hex)
    return node.submit_and_wait(sign_tx(key, node.chain.chain_id, tx_type, 1, nonce, payload))


def state_snapshot(node: Node) -> dict[str, bytes]:
    """Every committed state entry, to compare before and after a refused operation."""
    conn = node.store.view().connection
    return {k: bytes(v) for k, v in conn.execute("SELECT key, value FROM state").fetchall()}


def diff_keys(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


@dataclass
class World:
    node: Node
    home: Any
    url: str
    keys: dict[str, SigningKey] = field(default_factory=dict)
    vaults: dict[str, Vault] = field(default_factory=dict)
    clients: dict[str, RecordsClient] = field(default_factory=dict)
    ledger: Client | None = None

    def client(self, who: str) -> RecordsClient:
        if who not in self.clients:
            assert self.ledger is not None
            self.clients[who] = RecordsClient(self.ledger, self.keys[who])
        return self.clients[who]

    def pseudonym(self, who: str) -> str:
        return self.client(who).pseudonym

    def wait_for_audit(self) -> None:
        """Let the audit transactions admitted so far commit (the mempool drains)."""
        deadline = time.monotonic() + 10
        while len(self.node.mempool) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not len(self.node.mempool), "the mempool did not drain"


def build_world(node: Node, home: Any, url: str) -> World:
    w = World(node, home, url)
    for org in ("hospital", "clinic"):
        vault = Vault.create(Path(home.path) / "vault" / org, org)
        w.vaults[org] = vault
        send(node, seeded_key(f"admin/{org}"), "identity.enrol_member",
             {"member": vault.gateway_key.public_hex, "org": org, "roles": ["data_steward"]})
    people = {"dr_a": ("hospital", ["physician"]), "dr_b": ("clinic", ["physician"]),
              "medic_b": ("clinic", ["emergency", "nurse"]), "insurer_x": ("insurer", ["claims_officer"]),
              "researcher": ("research", ["researcher"])}
    for name, (org, roles) in people.items():
        w.keys[name] = seeded_key(f"member/{name}")
        send(node, seeded_key(f"admin/{org}"), "identity.enrol_member",
             {"member": w.keys[name].public_hex, "org": org, "roles": roles})
    for name in ("alice", "bob", "guardian"):
        w.keys[name] = seeded_key(f"patient/{name}")
        send(node, w.keys[name], "identity.register_patient", {})
    w.ledger = Client(url)
    return w


@pytest.fixture(name="world")
def world_fixture(node: Node, node_home: Any) -> Iterator[World]:
    from careledger.api.server import serve_in_thread

    server = serve_in_thread(node)
    w = build_world(node, node_home, server.url)
    try:
        yield w
    finally:
        for c in w.clients.values():
            c.close()
        assert w.ledger is not None
        w.ledger.close()
        server.stop()  # closes the app's services, the gateway among them
        for v in w.vaults.values():
            v.close()


def synthea_bundle(i: int = 0) -> bytes:
    return SYNTHEA_FILES[i].read_bytes()


def synthea_patient(i: int = 0) -> dict[str, Any]:
    doc = json.loads(synthea_bundle(i))
    return next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Patient")
