"""Claims end to end on a real node: its HTTP API on loopback, the desks and gateways of a hospital and two
insurers (one vault each), claims officers, a physician, patients, plans, the approved edit table,
coverages registered from FHIR Coverage resources and the patient's consent for payment (HPAYMT).

:func:`claims_node` builds it; tests use :class:`ClaimsNode` through the real client
(:mod:`careledger.client.claims`), as any program would.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from careledger.claims.content import date_of
from careledger.claims.coverage import COVERAGE_CLASS_SYSTEM
from careledger.claims.edits import synthetic_tables
from careledger.client import Client
from careledger.client.claims import ClaimsClient
from careledger.client.records import RecordsClient
from careledger.contracts.claims.layout import day_of_ms
from careledger.core.crypto import SigningKey
from careledger.keys import write_key
from careledger.node.home import Home, init_home
from careledger.vault.store import Vault
from support import GENESIS_TIME_MS, make_consortium, seeded_key
from support.claims import ORGS, ROLES
from support.claims_data import HCPCS, LOCAL, example_plan, fhir_claim, line, synthea_resources

PEOPLE = {"hospital-officer": ("hospital", ["claims_officer"]), "dr": ("hospital", ["physician"]),
          "clinic-officer": ("clinic", ["claims_officer"]), "insurer-officer": ("insurer", ["claims_officer"]),
          "insurer-b-officer": ("insurer-b", ["claims_officer"]), "pharmacist": ("pharmacy", ["pharmacist"])}
PATIENTS = ("patient", "patient-2")
VAULTS = ("hospital", "insurer", "insurer-b")
PLAN = "example-ppo"


def today() -> int:
    return day_of_ms(int(time.time() * 1000))


def coverage_resource(pseudonym: str, insurer: str, start_day: int, order: int = 1, end_day: int | None = None,
                      status: str = "active") -> dict[str, Any]:
    """A FHIR R4 Coverage with a member id and a subscriber id (which never reach the ledger)."""
    period = {"start": date_of(start_day)}
    if end_day is not None:
        period["end"] = date_of(end_day)
    return {"resourceType": "Coverage", "status": status,
            "identifier": [{"system": "https://insurer.example/member-id", "value": f"MBR-{pseudonym[3:11]}-{order}"}],
            "subscriberId": f"SUB-{pseudonym[3:9]}",
            "beneficiary": {"identifier": {"system": "urn:careledger:pseudonym", "value": pseudonym}},
            "payor": [{"identifier": {"system": "urn:careledger:org", "value": insurer}}],
            "class": [{"type": {"coding": [{"system": COVERAGE_CLASS_SYSTEM, "code": "plan"}]}, "value": PLAN}],
            "period": period, "order": order}


@dataclass
class ClaimsNode:
    node: Any
    home: Home
    url: str
    consortium: Any
    ledger: Client
    keys: dict[str, SigningKey] = field(default_factory=dict)
    vaults: dict[str, Vault] = field(default_factory=dict)
    coverages: dict[tuple[str, str], str] = field(default_factory=dict)
    _claims: dict[str, ClaimsClient] = field(default_factory=dict)
    _records: dict[str, RecordsClient] = field(default_factory=dict)
    _n: int = 0

    def claims(self, who: str) -> ClaimsClient:
        if who not in self._claims:
            key = self.keys[who] if who in self.keys else self.consortium.admin(who.removesuffix("-admin"))
            self._claims[who] = ClaimsClient(self.ledger, key)
        return self._claims[who]

    def records(self, who: str) -> RecordsClient:
        if who not in self._records:
            self._records[who] = RecordsClient(self.ledger, self.keys[who])
        return self._records[who]

    def pseudonym(self, who: str = "patient") -> str:
        return self.records(who).pseudonym

    def send(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        result = self.ledger.send(key, tx_type, 1, payload)
        assert result["receipt"]["code"] == 0, result["receipt"]
        return result

    def wait_idle(self) -> None:
        """Let the audit entries admitted so far commit."""
        deadline = time.monotonic() + 10
        while len(self.node.mempool) and time.monotonic() < deadline:
            time.sleep(0.005)

    # -- the parts of a claim ------------------------------------------------------------------------------
    def encounter(self, who: str = "patient", day: int | None = None) -> tuple[str, str]:
        """A Synthea Encounter (today) stored at the hospital by its physician: (record id, resource id)."""
        self._n += 1
        resource = copy.deepcopy(synthea_resources("Encounter")[0])
        day = today() if day is None else day
        resource["id"] = f"enc-e2e-{self._n:04d}"
        resource["period"] = {"start": f"{date_of(day)}T09:00:00Z", "end": f"{date_of(day)}T10:00:00Z"}
        resource["subject"] = {"reference": "urn:uuid:patient"}
        stored = self.records("dr").store("hospital", self.pseudonym(who), resource)
        return stored["records"][0]["record"], resource["id"]

    def claim_resource(self, encounter_id: str, *codes: str, net: float = 200.0,
                       day: int | None = None) -> dict[str, Any]:
        """A professional FHIR Claim for the encounter (first line names it), one line per code."""
        when = date_of(today() if day is None else day)
        items = [line(c, system=HCPCS if c.startswith("G") else LOCAL, net=net, date=when,
                      encounter=f"urn:uuid:{encounter_id}" if i == 0 else None)
                 for i, c in enumerate(codes or ("G0438", "ZZ002"))]
        return fhir_claim(*items, created=when)

    def submit(self, who: str = "patient", *codes: str, insurer: str = "insurer",
               encounter: tuple[str, str] | None = None, **kw: Any) -> dict[str, Any]:
        record, rid = encounter or self.encounter(who)
        result = self.claims("hospital-officer").submit(
            "hospital", self.pseudonym(who), record, self.coverages[(insurer, who)], insurer,
            self.claim_resource(rid, *codes), **kw)
        assert result["receipt"]["code"] == 0, result["receipt"]
        return result


def build(node: Any, home: Home, url: str, consortium: Any) -> ClaimsNode:
    # a shared, loaded machine can take over the default 10 s to commit
    world = ClaimsNode(node, home, url, consortium, Client(url, timeout=60.0))
    for org in VAULTS:
        vault = Vault.create(Path(home.path) / "vault" / org, org)
        world.vaults[org] = vault
        world.send(consortium.admin(org), "identity.enrol_member",
                   {"member": vault.gateway_key.public_hex, "org": org, "roles": ["data_steward"]})
    for name, (org, roles) in PEOPLE.items():
        world.keys[name] = seeded_key(f"claims-e2e/{name}")
        world.send(consortium.admin(org), "identity.enrol_member",
                   {"member": world.keys[name].public_hex, "org": org, "roles": roles})
    for name in PATIENTS:
        world.keys[name] = seeded_key(f"claims-e2e/{name}")
        world.send(world.keys[name], "identity.register_patient", {})
    day = today()
    for insurer in ("insurer", "insurer-b"):
        world.claims(f"{insurer}-officer").register_plan(insurer, PLAN, 1, day, example_plan().document)
    t = synthetic_tables()
    assert world.claims("insurer-admin").propose_table(t.name, t.version, t.effective_day, t.digest)[
        "receipt"]["code"] == 0
    for org in ("hospital", "clinic", "insurer-b", "pharmacy", "research"):
        world.claims(f"{org}-admin").vote_table(t.name, t.version, True)
    for who in PATIENTS:
        for order, insurer in enumerate(("insurer", "insurer-b"), start=1):
            done = world.claims(f"{insurer}-officer").register_coverage(
                insurer, world.pseudonym(who), coverage_resource(world.pseudonym(who), insurer, day - 30, order))
            assert done["receipt"]["code"] == 0, done["receipt"]
            world.coverages[(insurer, who)] = done["receipt"]["result"]["coverage"]
            world.records(who).grant(world.pseudonym(who), "org", insurer, ["HPAYMT"])
    return world


def close_world(world: ClaimsNode, server: Any, node: Any) -> None:
    """Close what :func:`build` opened, then the API server and the node under it."""
    for c in world._claims.values():
        c.close()
    for r in world._records.values():
        r.close()
    world.ledger.close()
    server.stop()
    for v in world.vaults.values():
        v.close()
    node.close()


@pytest.fixture(name="claims_node")
def claims_node_fixture(tmp_path: Path) -> Iterator[ClaimsNode]:
    from careledger.api.server import serve_in_thread

    consortium = make_consortium(ORGS, ROLES, label="e2e-")
    genesis = consortium.write_genesis(tmp_path / "genesis.json")
    key_file = tmp_path / "validator.json"
    write_key(key_file, consortium.validator, "validator")
    home = init_home(tmp_path / "home", genesis, key_file, GENESIS_TIME_MS, chain_id=consortium.chain_id)
    node = home.open_node()
    node.start()
    server = serve_in_thread(node)
    world = build(node, home, server.url, consortium)
    try:
        yield world
    finally:
        close_world(world, server, node)
