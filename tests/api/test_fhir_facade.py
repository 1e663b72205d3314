"""The FHIR R4 facade (docs/fhir.md) against a real node over real HTTP, with fhirpy as the client.

The world (tests/support/records.py) is a real solo-engine node on a real SQLite home with the
hospital's and the clinic's vaults behind its gateway. Every answer is checked against the
``fhir.resources`` R4B models; every refusal is an OperationOutcome carrying its stable code, with
the HTTP status the code has, and writes nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ForbiddenError, OperationOutcome, ResourceNotFound
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.api.fhir import CODE_SYSTEM
from careledger.api.status import HTTP_STATUS, http_status
from careledger.contracts.audit import audit_prefix
from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.keys import write_key
from careledger.vault.requests import sign_headers
from support import require_tool, seeded_key
from support.records import (
    OBSERVATION,
    World,
    diff_keys,
    send,
    state_snapshot,
    world_fixture,  # noqa: F401
)

# -- helpers -------------------------------------------------------------------------------------------------


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` after checking it against its R4B model (the test fails on any invalid element)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


TOKEN_PATH = "/fhir/auth/token"


def token_request(key: SigningKey, chain_id: str, fields: dict[str, Any], kind: str = "token",
                  **kw: Any) -> dict[str, Any]:
    """``httpx`` arguments of a signed ``token`` request (``fields`` beside the kind) of ``key``."""
    body = json.dumps({"kind": kind, **fields}).encode()
    return {"content": body, "headers": {**sign_headers(key, chain_id, "POST", TOKEN_PATH, body, **kw),
                                         "content-type": "application/json"}}


def exchange(world: World, who: str, **fields: Any) -> httpx.Response:
    """POST a signed ``token`` request of ``who``'s key to the token endpoint."""
    return httpx.post(world.url + TOKEN_PATH, timeout=10,
                      **token_request(world.keys[who], world.node.chain.chain_id, fields))


def token_of(world: World, who: str, **fields: Any) -> str:
    r = exchange(world, who, **fields)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return str(r.json()["access_token"])


def fhir(world: World, token: str | None = None) -> SyncFHIRClient:
    return SyncFHIRClient(f"{world.url}/fhir", authorization=f"Bearer {token}" if token else None)


def get(world: World, path: str, token: str | None = None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"{world.url}/fhir/{path}", headers=headers, timeout=20)


def forged(token: str, **claims: Any) -> str:
    """``token`` with some claims changed, its MAC kept."""
    prefix, body, mac = token.split(".")
    doc = codec.decode(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert isinstance(doc, dict)
    changed = base64.urlsafe_b64encode(codec.encode({**doc, **claims})).decode().rstrip("=")
    return f"{prefix}.{changed}.{mac}"


def served(resource: Any) -> dict[str, Any]:
    """A resource fhirpy fetched, as the JSON the facade served (checked by :func:`valid`)."""
    return valid(resource.serialize())


def refused(r: httpx.Response, code: Code) -> dict[str, Any]:
    """Check ``r`` is the OperationOutcome for ``code`` with the code's HTTP status; returns it."""
    assert r.status_code == http_status(code), (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/fhir+json")
    outcome = valid(r.json())
    assert outcome["resourceType"] == "OperationOutcome"
    [coding] = outcome["issue"][0]["details"]["coding"]
    assert (coding["system"], coding["code"], coding["display"]) == (CODE_SYSTEM, str(int(code)), code.name)
    return outcome


def audit_entries(world: World, pseudonym: str) -> list[dict[str, Any]]:
    """The patient's committed audit entries, read straight from the node's store."""
    view = world.node.store.view()
    prefix = audit_prefix(pseudonym)
    rows = view.connection.execute("SELECT value FROM state WHERE key >= ? AND key < ? ORDER BY key",
                                   (prefix, prefix + "~")).fetchall()
    return [dict(codec.decode(bytes(v))) for (v,) in rows]


def stored_observation(world: World) -> str:
    """Alice's heart rate stored by the hospital; the clinic is refused once, then consented to and reads."""
    alice = world.pseudonym("alice")
    record = str(world.client("dr_a").store("hospital", alice, OBSERVATION)["records"][0]["record"])
    with pytest.raises(Exception, match="CONSENT_REQUIRED"):
        world.client("dr_b").read("hospital", alice, [record])
    world.client("alice").grant(alice, "org", "clinic", ["TREAT"])
    world.client("dr_b").read("hospital", alice, [record])
    world.wait_for_audit()
    return record


# -- discovery -----------------------------------------------------------------------------------------------


def test_metadata_is_a_capability_statement_of_the_served_types(world: World) -> None:
    r = get(world, "metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    statement = valid(r.json())
    assert statement["fhirVersion"] == "4.0.1" and statement["kind"] == "instance"
    served = {res["type"]: res for res in statement["rest"][0]["resource"]}
    for rtype, params in (("Consent", {"patient", "date", "status", "purpose"}),
                          ("AuditEvent", {"patient", "date", "outcome"}),
                          ("Provenance", {"patient", "recorded", "target"}),
                          ("Observation", {"patient", "_lastUpdated"})):
        assert {p["name"] for p in served[rtype]["searchParam"]} == params
        assert [i["code"] for i in served[rtype]["interaction"]] == ["read", "search-type"]
    oauth = statement["rest"][0]["security"]["extension"][0]["extension"]
    assert oauth == [{"url": "token", "valueUri": f"{world.url}/fhir/auth/token"}]
    # fhirpy reads it too, and the SMART configuration names the same endpoint
    assert fhir(world).execute("metadata", method="get")["id"] == "careledger"
    smart = httpx.get(f"{world.url}/fhir/.well-known/smart-configuration").json()
    assert smart["token_endpoint"] == f"{world.url}/fhir/auth/token"


# -- the patient: Consent and AuditEvent through fhirpy ------------------------------------------------------


def test_patient_reads_and_searches_consent_and_audit_events_with_fhirpy(world: World) -> None:
    record = stored_observation(world)
    alice, dr_b = world.pseudonym("alice"), world.keys["dr_b"].public_hex
    answer = exchange(world, "alice").json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 300 and answer["patient"] == alice
    assert answer["scope"] == "patient/*.read" and answer["purpose"] == "PATRQT"
    client = fhir(world, answer["access_token"])

    consents = client.resources("Consent").search(patient=alice).fetch_all()
    assert len(consents) == 1
    consent = served(consents[0])
    assert consent["status"] == "active"
    assert consent["patient"]["identifier"]["value"] == alice
    assert consent["provision"]["actor"][0]["reference"]["reference"] == "Organization/clinic"
    assert valid(dict(client.get("Consent", consent["id"]))) == consent  # read by id: the same resource
    # the patient's own key may leave the patient out: it is their own compartment
    assert [c.id for c in client.resources("Consent").search(status="active").fetch_all()] == [consent["id"]]
    assert client.resources("Consent").search(status="inactive").fetch_all() == []

    events = [served(e) for e in client.resources("AuditEvent").search(patient=alice).fetch_all()]
    clinic = [e for e in events if e["agent"][0]["who"]["identifier"]["value"] == dr_b]
    assert [e["outcome"] for e in clinic] == ["4", "0"]  # refused, then granted under the consent
    assert all(e["entity"][1]["what"]["identifier"]["value"] == record for e in clinic)
    denied = client.resources("AuditEvent").search(patient=f"Patient/{alice}", outcome="4").fetch_all()
    assert [e.id for e in denied] == [clinic[0]["id"]]
    assert valid(dict(client.get("AuditEvent", clinic[1]["id"]))) == clinic[1]

    # dates: everything happened today; nothing before 2020 or after 2100
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert len(client.resources("AuditEvent").search(date=today).fetch_all()) == len(events)
    assert client.resources("AuditEvent").search(date="lt2020").fetch_all() == []
    assert len(client.resources("AuditEvent").search(date="ge2020-01-01T00:00:00Z", patient=alice)
               .search(date="lt2100").fetch_all()) == len(events)

    # the Provenance of the record: anchored by the hospital's physician, version 1
    [prov] = [served(p) for p in client.resources("Provenance").search(target=record).fetch_all()]
    assert prov["target"][0]["reference"] == f"Observation/{record}/_history/1"
    assert prov["agent"][0]["who"]["identifier"]["value"] == world.keys["dr_a"].public_hex


def test_search_pages_with_links_that_fhirpy_follows(world: World) -> None:
    alice = world.pseudonym("alice")
    for org in ("clinic", "insurer", "research"):
        world.client("alice").grant(alice, "org", org, ["TREAT"])
    token = token_of(world, "alice")
    client = fhir(world, token)
    page = client.resources("Consent").search(patient=alice).limit(2)
    assert len(page.fetch()) == 2
    assert [c.id for c in page.fetch_all()] == [c.id for c in client.resources("Consent").search().fetch_all()]
    assert len(page.fetch_all()) == 3
    bundle = valid(get(world, f"Consent?patient={alice}&_count=2&_offset=2", token).json())
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert bundle["total"] == 3 and len(bundle["entry"]) == 1 and "next" not in links
    assert links["previous"] == f"{world.url}/fhir/Consent?patient={alice}&_count=2&_offset=0"
    assert links["first"].endswith("_count=2&_offset=0") and links["last"].endswith("_count=2&_offset=2")
    counted = valid(get(world, f"Consent?patient={alice}&_count=0", token).json())
    assert counted["total"] == 3 and "entry" not in counted


# -- clinical records through the gateway ----------------------------------------------------------------


def test_record_read_under_consent_is_audited_exactly_like_a_gateway_read(world: World) -> None:
    record = stored_observation(world)
    alice = world.pseudonym("alice")
    token = token_of(world, "dr_b")
    r = get(world, f"Observation/{record}", token)
    assert r.status_code == 200, r.text
    assert b'"value":72.5' in r.content  # the stored decimal, exactly
    observation = valid(r.json())
    assert observation["id"] == record and observation["meta"]["versionId"] == "1"
    facade_entry = audit_entries(world, alice)[-1]  # committed before the content was released
    world.client("dr_b").read("hospital", alice, [record])
    gateway_entry = audit_entries(world, alice)[-1]
    differ = {"request", "request_ms", "height", "time_ms"}
    assert {k: v for k, v in facade_entry.items() if k not in differ} == \
           {k: v for k, v in gateway_entry.items() if k not in differ}
    assert facade_entry["requester"] == world.keys["dr_b"].public_hex and facade_entry["outcome"] == "granted"
    assert facade_entry["mode"] == "consent" and facade_entry["purpose"] == "TREAT"
    # search: the clinic's token sees the one Observation it may read, read (and audited) as well
    bundle = valid(get(world, f"Observation?patient={alice}", token).json())
    assert bundle["total"] == 1 and bundle["entry"][0]["resource"]["id"] == record
    assert len(audit_entries(world, alice)) == 5
    # fhirpy, with a token that carries another purpose of use: refused by the consent, and audited
    with pytest.raises(ForbiddenError, match=str(int(Code.CONSENT_PURPOSE_NOT_COVERED))):
        fhir(world, token_of(world, "dr_b", purpose="HRESCH")).get("Observation", record)
    assert audit_entries(world, alice)[-1]["outcome"] == "denied"
    assert audit_entries(world, alice)[-1]["purpose"] == "HRESCH"


def test_record_read_without_consent_is_refused_and_audited(world: World) -> None:
    alice = world.pseudonym("alice")
    record = str(world.client("dr_a").store("hospital", alice, OBSERVATION)["records"][0]["record"])
    token = token_of(world, "insurer_x")
    refused(get(world, f"Observation/{record}", token), Code.CONSENT_REQUIRED)
    last = audit_entries(world, alice)[-1]
    assert (last["outcome"], last["code"], last["requester"]) == \
           ("denied", int(Code.CONSENT_REQUIRED), world.keys["insurer_x"].public_hex)
    # a search lists nothing the key may not read (and audits nothing: it releases nothing)
    before = len(audit_entries(world, alice))
    assert valid(get(world, f"Observation?patient={alice}", token).json())["total"] == 0
    assert len(audit_entries(world, alice)) == before
    # a record id under another type is not that type's record
    refused(get(world, f"Encounter/{record}", token), Code.RECORD_UNKNOWN)


# -- refusals: each an OperationOutcome with its code and status, and nothing written --------------------


def test_refusals_are_operation_outcomes_and_write_nothing(world: World) -> None:
    alice, bob = world.pseudonym("alice"), world.pseudonym("bob")
    world.client("alice").grant(alice, "org", "clinic", ["TREAT"])
    alice_token = token_of(world, "alice")
    short = token_of(world, "alice", expires_in=1)
    before = state_snapshot(world.node)

    # no credentials at all; a stock client gets its AuthorizationError
    outcome = refused(get(world, f"Consent?patient={alice}"), Code.MISSING_SIGNATURE)
    assert outcome["issue"][0]["code"] == "login"
    with pytest.raises(AuthorizationError, match="MISSING_SIGNATURE"):
        fhir(world).resources("Consent").search(patient=alice).fetch()
    assert get(world, f"Consent?patient={alice}").headers["www-authenticate"] == 'Bearer realm="CareLedger"'

    # an expired token
    time.sleep(1.05)
    r = get(world, f"Consent?patient={alice}", short)
    assert refused(r, Code.TOKEN_EXPIRED)["issue"][0]["code"] == "expired"
    assert r.headers["www-authenticate"] == 'Bearer realm="CareLedger", error="invalid_token"'

    # a token this node did not issue, or tampered with; another scheme
    refused(get(world, "Consent", forged(alice_token, purpose="TREAT")), Code.TOKEN_INVALID)
    refused(get(world, "Consent", forged(short, exp_ms=2**52)), Code.TOKEN_INVALID)  # no extending one either
    refused(get(world, "Consent", "not-a-token"), Code.TOKEN_INVALID)
    refused(get(world, "Consent", Authorization=f"Basic {alice_token}"), Code.TOKEN_INVALID)

    # a patient searching (or reading) another patient's resources
    outcome = refused(get(world, f"Consent?patient={bob}", alice_token), Code.NOT_PATIENT_OR_DELEGATE)
    assert outcome["issue"][0]["code"] == "forbidden"
    with pytest.raises(ForbiddenError, match="NOT_PATIENT_OR_DELEGATE"):
        fhir(world, alice_token).resources("AuditEvent").search(patient=bob).fetch()

    # an unknown resource type, and types the facade never serves
    outcome = refused(get(world, f"Foo?patient={alice}", alice_token), Code.FHIR_TYPE_UNKNOWN)
    assert outcome["issue"][0]["code"] == "not-supported"
    refused(get(world, "Bundle/r-" + "0" * 32, alice_token), Code.FHIR_TYPE_UNKNOWN)

    # malformed or unsupported search parameters
    for query in ("date=yesterday", "date=2024-13-01", "date=ap2024", "_count=many", "_count=-1", "_offset=x",
                  "patient=alice", "status:not=active", "_sort=date", "nonsense=1", "_format=xml"):
        outcome = refused(get(world, f"Consent?{query}", alice_token), Code.FHIR_SEARCH_INVALID)
        assert outcome["issue"][0]["code"] == "invalid"
    with pytest.raises(OperationOutcome, match="FHIR_SEARCH_INVALID"):
        fhir(world, alice_token).resources("Consent").search(date="soon").fetch()
    # ... unless the client asks for lenient handling: unknown parameters are then ignored
    lenient = get(world, "Consent?nonsense=1", alice_token, Prefer="handling=lenient")
    assert lenient.status_code == 200 and "nonsense" not in lenient.json()["link"][0]["url"]

    # a member searching without naming the patient; a missing resource
    refused(get(world, "Consent", token_of(world, "dr_b")), Code.FHIR_SEARCH_INVALID)
    refused(get(world, "Consent/cns-" + "0" * 24, alice_token), Code.CONSENT_UNKNOWN)
    refused(get(world, f"AuditEvent/{alice}-000000000001-00000-0000", alice_token), Code.NOT_FOUND)
    refused(get(world, "Consent/x/_history/1", alice_token), Code.NOT_FOUND)

    # a scope that does not cover the resource type
    narrow = token_of(world, "alice", scope="patient/Consent.read")
    assert get(world, "Consent", narrow).status_code == 200
    refused(get(world, "AuditEvent", narrow), Code.UNAUTHORISED)
    refused(get(world, "Consent", token_of(world, "alice", scope="patient/Consent.r")), Code.UNAUTHORISED)

    assert diff_keys(before, state_snapshot(world.node)) == []


def test_the_facade_codes_have_their_statuses_in_the_api_table(world: World) -> None:
    """The four codes of the facade answer through the API's one status table (careledger.api.status):
    a token refusal is a 401 (with the Bearer challenge), an unknown type a 404, a bad search a 400;
    a stock client then raises the exception that status means to it."""
    assert {c: HTTP_STATUS.get(c) for c in (Code.TOKEN_INVALID, Code.TOKEN_EXPIRED, Code.FHIR_TYPE_UNKNOWN,
                                            Code.FHIR_SEARCH_INVALID)} == \
           {Code.TOKEN_INVALID: 401, Code.TOKEN_EXPIRED: 401, Code.FHIR_TYPE_UNKNOWN: 404,
            Code.FHIR_SEARCH_INVALID: 400}
    token = token_of(world, "alice")
    with pytest.raises(ResourceNotFound, match="FHIR_TYPE_UNKNOWN"):
        fhir(world, token).resources("NoSuchThing").search().fetch()
    with pytest.raises(AuthorizationError, match="TOKEN_INVALID"):
        fhir(world, "clt1.forged.token").resources("Consent").search().fetch()


def test_a_revoked_members_token_stops_working(world: World) -> None:
    """Tokens are bound to the key: a revocation committed after the exchange refuses the next use."""
    alice = world.pseudonym("alice")
    record = stored_observation(world)
    nurse = world.keys["nurse_b"] = seeded_key("member/nurse_b")
    send(world.node, seeded_key("admin/clinic"), "identity.enrol_member",
         {"member": nurse.public_hex, "org": "clinic", "roles": ["nurse"]})
    token = token_of(world, "nurse_b")
    assert get(world, f"Observation/{record}", token).status_code == 200
    receipt = send(world.node, seeded_key("admin/clinic"), "identity.revoke_member",
                   {"member": nurse.public_hex, "org": "clinic", "reason": "left the clinic"})
    assert receipt.code == 0
    audited = len(audit_entries(world, alice))
    refused(get(world, f"Observation/{record}", token), Code.SIGNER_REVOKED)
    refused(get(world, f"Provenance?patient={alice}", token), Code.SIGNER_REVOKED)
    refused(exchange(world, "nurse_b"), Code.SIGNER_REVOKED)  # and no new token
    assert len(audit_entries(world, alice)) == audited  # refused before any record was looked at


def test_the_token_exchange_refuses_bad_requests(world: World) -> None:
    chain_id = world.node.chain.chain_id
    url = world.url + TOKEN_PATH
    alice = world.keys["alice"]
    signed = token_request(alice, chain_id, {})
    assert httpx.post(url, **signed).status_code == 200
    refused(httpx.post(url, **signed), Code.REQUEST_REPLAYED)  # a signed request is used once
    stale = token_request(alice, chain_id, {}, now_ms=int(time.time() * 1000) - 600_000)
    refused(httpx.post(url, **stale), Code.REQUEST_STALE)
    refused(httpx.post(url, **token_request(alice, "another-chain", {})), Code.BAD_SIGNATURE)
    unsigned = token_request(alice, chain_id, {})
    del unsigned["headers"]["Authorization"]
    refused(httpx.post(url, **unsigned), Code.MISSING_SIGNATURE)
    refused(httpx.post(url, **token_request(alice, chain_id, {}, kind="read")), Code.REQUEST_MALFORMED)
    refused(httpx.post(url, **token_request(alice, chain_id, {"expires_in": 3600})), Code.REQUEST_MALFORMED)
    refused(httpx.post(url, **token_request(alice, chain_id, {"scope": "system/*.write"})), Code.REQUEST_MALFORMED)
    not_json = b"{not json"
    refused(httpx.post(url, content=not_json, headers={
        **sign_headers(alice, chain_id, "POST", TOKEN_PATH, not_json), "content-type": "application/json"}),
        Code.REQUEST_MALFORMED)
    refused(httpx.post(url, content=signed["content"], headers={**signed["headers"], "content-type": "text/plain"}),
            Code.UNSUPPORTED_MEDIA_TYPE)
    refused(httpx.post(url, **token_request(seeded_key("nobody"), chain_id, {})), Code.UNKNOWN_SIGNER)


def test_signed_requests_work_as_elsewhere_in_the_api_and_once(world: World) -> None:
    """Without a token: the signed requests of protocol.md section 4.3, patients included."""
    alice = world.pseudonym("alice")
    world.client("alice").grant(alice, "org", "clinic", ["TREAT"])
    target = f"/fhir/Consent?patient={alice}"
    headers = sign_headers(world.keys["alice"], world.node.chain.chain_id, "GET", target)
    r = httpx.get(world.url + target, headers=headers)
    assert r.status_code == 200 and valid(r.json())["total"] == 1
    refused(httpx.get(world.url + target, headers=headers), Code.REQUEST_REPLAYED)
    other = sign_headers(world.keys["alice"], world.node.chain.chain_id, "GET", target + "&_count=1")
    refused(httpx.get(world.url + target, headers=other), Code.BAD_SIGNATURE)  # signed for another target
    refused(httpx.get(world.url + target), Code.MISSING_SIGNATURE)
    refused(httpx.get(world.url + target, headers={"Authorization": "Basic YTpi"}), Code.TOKEN_INVALID)


def test_a_delegate_and_an_emergency_token(world: World) -> None:
    """A guardian the patient appointed sees the patient's resources; a break-glass token reads, flagged."""
    alice = world.pseudonym("alice")
    record = str(world.client("dr_a").store("hospital", alice, OBSERVATION)["records"][0]["record"])
    guardian = token_of(world, "guardian")
    refused(get(world, f"Consent?patient={alice}", guardian), Code.NOT_PATIENT_OR_DELEGATE)
    world.client("alice").appoint_delegate(world.keys["guardian"].public_hex)
    world.client("guardian").grant(alice, "org", "clinic", ["TREAT"])
    [consent] = fhir(world, guardian).resources("Consent").search(patient=alice).fetch_all()
    assert consent.patient.identifier.value == alice
    # the guardian's own compartment is their own pseudonym, not the patient's
    assert fhir(world, guardian).resources("Consent").search().fetch_all() == []

    # the clinic's emergency nurse: refused without a session, read under one, and flagged in the log
    emergency = token_of(world, "medic_b", emergency=True, purpose="ETREAT")
    refused(get(world, f"Observation/{record}", emergency), Code.BREAK_GLASS_REQUIRED)
    world.client("medic_b").break_glass(alice, "unconscious", minutes=30)
    assert get(world, f"Observation/{record}", emergency).status_code == 200
    last = audit_entries(world, alice)[-1]
    assert (last["emergency"], last["mode"], last["requester"]) == (True, "emergency", world.keys["medic_b"].public_hex)
    events = fhir(world, token_of(world, "alice")).resources("AuditEvent").search(outcome="0").fetch_all()
    assert events[-1].purposeOfEvent[0].coding[0].code == "ETREAT"


# -- date search, as a property ------------------------------------------------------------------------------

_INSTANTS = st.integers(min_value=0, max_value=253_402_300_799_999)  # 1970 .. 9999-12-31T23:59:59.999Z


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(t=_INSTANTS, precision=st.sampled_from(["%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%dT%H:%MZ",
                                                "%Y-%m-%dT%H:%M:%SZ", "ms"]))
def test_a_date_value_denotes_the_range_it_names(t: int, precision: str) -> None:
    """An instant matches ``eq`` of its own date at every precision, and exactly one of lt / eq / gt."""
    from datetime import UTC, datetime

    from careledger.vault.fhir_search import parse_date

    moment = datetime.fromtimestamp(t / 1000, UTC)
    text = (moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if precision == "ms"
            else moment.strftime(precision))
    eq = parse_date("date", text)
    assert eq.matches(t) and not parse_date("date", "ne" + text).matches(t)
    assert parse_date("date", "ge" + text).matches(t) and parse_date("date", "le" + text).matches(t)
    assert not parse_date("date", "lt" + text).matches(t) and not parse_date("date", "gt" + text).matches(t)
    assert parse_date("date", "gt" + text).matches(eq.hi) and parse_date("date", "lt" + text).matches(eq.lo - 1)
    assert not eq.matches(eq.hi) and not eq.matches(eq.lo - 1)


def test_date_values_with_zones_and_what_is_refused() -> None:
    from careledger.vault.fhir_search import parse_date

    noon_utc = 1_704_110_400_000  # 2024-01-01T12:00:00Z
    assert parse_date("date", "2024-01-01T13:00:00+01:00").lo == noon_utc
    assert parse_date("date", "2024-01-01T13:00:00 01:00").lo == noon_utc  # a '+' the query string turned into ' '
    assert parse_date("date", "2024-01-01T07:00:00-05:00").lo == noon_utc
    assert parse_date("date", "2024-01-01T12:00:00").lo == noon_utc  # no zone: UTC
    for bad in ("2024-1-01", "2024-02-30", "24", "2024-01-01T25:00", "ap2024", "2024-01-01T12:00+15:00", "x"):
        with pytest.raises(Exception, match="FHIR_SEARCH_INVALID"):
            parse_date("date", bad)


# -- docs/fhir.md: its examples run ------------------------------------------------------------------------

FHIR_MD = Path(__file__).resolve().parents[2] / "docs" / "fhir.md"


def doc_blocks(lang: str) -> list[str]:
    """The fenced blocks of docs/fhir.md tagged exactly ``lang`` (``python illustration`` is not run)."""
    return re.findall(rf"^```{lang}\n(.*?)^```", FHIR_MD.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def test_the_docs_examples_run(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    require_tool(Path(shutil.which("curl") or "/nonexistent/curl"), "curl")
    record = stored_observation(world)
    alice = world.pseudonym("alice")
    write_key(tmp_path / "patient.json", world.keys["alice"], "alice")
    monkeypatch.chdir(tmp_path)
    [python] = doc_blocks("python")
    exec(compile(python.replace("http://127.0.0.1:8700", world.url), str(FHIR_MD), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in out if line.startswith("consent ")] == ["Organization/clinic"]
    assert [line.split()[2] for line in out if line.startswith("refused ")] == [world.keys["dr_b"].public_hex]
    assert [line.split()[1] for line in out if line.startswith("record ")] == [f"Observation/{record}/_history/1"]

    [shell] = doc_blocks("sh")
    env = {**os.environ, "NODE": world.url, "TOKEN": token_of(world, "alice"), "PATIENT": alice, "RECORD": record}
    answers = [valid(json.loads(subprocess.run(["bash", "-c", line], env=env, capture_output=True, timeout=30,
                                               check=True).stdout))
               for line in shell.strip().splitlines()]
    assert [a["resourceType"] for a in answers] == ["CapabilityStatement", "Bundle", "Bundle", "Observation"]
    assert answers[1]["total"] == 1 and answers[2]["total"] == 2 and answers[3]["id"] == record
