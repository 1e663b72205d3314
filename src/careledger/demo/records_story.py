"""The demo's health-records chapters: a visit recorded, a clinic refused, consent, an emergency read,
the patient's access log, a revocation and an erasure — through the real HTTP API and gateway.

Imported by :mod:`careledger.demo.story` (which appends :data:`CHAPTERS`); it only imports the story
module inside functions, so the two modules load in either order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from careledger.client import ClientError
from careledger.client.records import RecordsClient
from careledger.vault.store import Vault

if TYPE_CHECKING:
    from careledger.demo.story import Story

VISIT: dict[str, Any] = {
    "resourceType": "Bundle", "type": "transaction",
    "entry": [
        {"fullUrl": "urn:uuid:visit-1", "request": {"method": "POST", "url": "Encounter"},
         "resource": {"resourceType": "Encounter", "status": "finished",
                      "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}},
        {"fullUrl": "urn:uuid:obs-1", "request": {"method": "POST", "url": "Observation"},
         "resource": {"resourceType": "Observation", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0",
                                           "display": "Glucose [Mass/volume] in Blood"}]},
                      "valueQuantity": {"value": 5.40, "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                                        "code": "mmol/L"}}},
    ],
}


def _fail(message: str) -> Exception:
    from careledger.demo.story import DemoFailed

    return DemoFailed(message)


def _refused(s: Story, fn: Callable[[], Any], expect: str) -> None:
    try:
        fn()
    except ClientError as exc:
        s.console.print(f"    [yellow]refused[/] {exc.name} ({exc.code}): {exc.message}")
        if exc.name != expect:
            raise _fail(f"expected {expect}, got {exc.name}") from exc
        return
    raise _fail(f"expected refusal {expect}, but it succeeded")


def _rc(s: Story, name: str) -> RecordsClient:
    clients: dict[str, RecordsClient] = s.facts.setdefault("records_clients", {})
    if name not in clients:
        clients[name] = RecordsClient(s.client, s.person(name))
    return clients[name]


def chapter_records(s: Story) -> None:
    c = s.consortium
    s.chapter("Health records: a visit at St Mary's, kept in its vault")
    s.step("St Mary's creates its vault (AES-256-GCM, a fresh key per record, wrapped by the organisation key) "
           "and enrols the vault's gateway key as a data steward.")
    vault = Vault.create(c.home.path / "vault" / "st-marys", "st-marys")
    gateway_key = vault.gateway_key.public_hex
    vault.close()
    s.send(c.admin("st-marys"), "identity.enrol_member",
           {"handle": "vault-gateway", "member": gateway_key, "org": "st-marys", "roles": ["data_steward"]})
    s.step("Riverside Clinic enrols Dr Chen (physician) and an emergency medic.")
    s.send(c.admin("riverside-clinic"), "identity.enrol_member",
           {"handle": "dr.chen", "member": s.person("dr_chen").public_hex, "org": "riverside-clinic",
            "roles": ["physician"]})
    s.send(c.admin("riverside-clinic"), "identity.enrol_member",
           {"handle": "medic.ed-3", "member": s.person("medic").public_hex, "org": "riverside-clinic",
            "roles": ["emergency", "nurse"]})
    pseudonym = _rc(s, "patient").pseudonym
    s.step("Dr Osei records the patient's visit: an Encounter and a glucose Observation (FHIR R4, validated). "
           "The ledger gets only pseudonym, type and a salted commitment.")
    result = _rc(s, "dr_osei").store("st-marys", pseudonym, VISIT)
    for r in result["records"]:
        s.console.print(f"    [green]anchored[/] {r['type']:<12} {r['record']}  commitment {r['commitment'][:16]}…")
    s.facts["obs_record"] = next(r["record"] for r in result["records"] if r["type"] == "Observation")


def chapter_consent(s: Story) -> None:
    record, pseudonym = s.facts["obs_record"], _rc(s, "patient").pseudonym
    s.chapter("Consent: the clinic reads only when the patient allows it")
    s.step("Dr Chen at Riverside asks St Mary's gateway for the Observation: no consent, refused and audited.")
    _refused(s, lambda: _rc(s, "dr_chen").read("st-marys", pseudonym, [record]), "CONSENT_REQUIRED")
    s.step("The patient grants Riverside Clinic access for treatment, Observations only.")
    result = _rc(s, "patient").grant(pseudonym, "org", "riverside-clinic", ["TREAT"], resource_types=["Observation"])
    s.facts["consent"] = result["receipt"]["result"]["consent"]
    s.console.print(f"    [green]consent[/] {s.facts['consent']} (block {result['height']})")
    s.step("Dr Chen reads it; the client checks SHA-256(salt ‖ resource) against the ledger anchor.")
    [rec] = _rc(s, "dr_chen").read("st-marys", pseudonym, [record])
    value = rec.resource["valueQuantity"]
    s.console.print(f"    [green]read[/] {rec.type} v{rec.version}: {value['value']} {value['unit']} "
                    f"(commitment verified, via {rec.mode})")
    s.step("An emergency medic opens a 4-hour break-glass session (reason: unconscious) and reads without consent.")
    _rc(s, "medic").break_glass(pseudonym, "unconscious", 240)
    [rec] = _rc(s, "medic").read("st-marys", pseudonym, [record], emergency=True)
    s.console.print(f"    [yellow]emergency read[/] {rec.type} — flagged in the audit trail")


def chapter_patient_view(s: Story) -> None:
    import time

    pseudonym = _rc(s, "patient").pseudonym
    s.chapter("The patient's view: my records, my consents, who looked")
    time.sleep(0.1)  # let the last audit entries commit
    view = _rc(s, "patient").view(fhir=True)
    s.step(f"{len(view['records'])} records, {len(view['consents'])} consent(s), "
           f"{view['summary']['accesses']} accesses ({view['summary']['denied']} denied, "
           f"{view['summary']['emergency']} emergency):")
    for e in view["access_log"]:
        flag = " [bold yellow]EMERGENCY[/]" if e["emergency"] else ""
        outcome = "[green]granted[/]" if e["outcome"] == "granted" else f"[red]denied {e['code']}[/]"
        s.console.print(f"    block {e['height']:>3}  {e['requester_org']:<17} {e['purpose']:<6} {outcome}{flag}")
    s.console.print(f"    exported as {len(view['access_log_fhir']['entry'])} FHIR AuditEvent resources; "
                    f"pseudonym {pseudonym[:12]}…")


def chapter_revoke_and_erase(s: Story) -> None:
    record, pseudonym = s.facts["obs_record"], _rc(s, "patient").pseudonym
    s.chapter("Revocation and erasure")
    s.step("The patient revokes the clinic's consent; from the next block Dr Chen is refused.")
    _rc(s, "patient").revoke(s.facts["consent"])
    _refused(s, lambda: _rc(s, "dr_chen").read("st-marys", pseudonym, [record]), "CONSENT_REVOKED")
    s.step("The patient asks St Mary's to erase the Observation: the erasure is committed, then the vault "
           "destroys its data key, salt and ciphertext.")
    result = _rc(s, "patient").erase(record, "patient_request", custodian="st-marys")
    s.console.print(f"    [green]erased[/] {result['versions_destroyed']} version(s) at block {result['height']}; "
                    "the anchor stays, unlinkable to any content")
    _refused(s, lambda: _rc(s, "dr_osei").read("st-marys", pseudonym, [record]), "RECORD_ERASED")


CHAPTERS: list[Callable[[Story], None]] = [chapter_records, chapter_consent, chapter_patient_view,
                                           chapter_revoke_and_erase]
