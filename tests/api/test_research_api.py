"""Research data sharing end to end, over real HTTP on loopback: the issue's done-when checks through the API.

One consortium for the module (a real node, SQLite, the API served with its lifespan): the hospital
holds the two vendored Synthea patients and twenty generated ones, the clinic twelve more, every
record stored through the records gateway. Every patient consents to the study with her own study
key and hands her custodian her linkage statement; one patient consents but never links. A release
is built, one patient revokes, a second release is built. The identifier scan is the test's own
reading of the source records, not the kernel's.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.client import ClientError
from careledger.client.research import (
    ReleaseRefusedError,
    read_release_dir,
    study_key,
    subject_of,
    write_release_dir,
)
from careledger.contracts.research import release_subjects
from careledger.contracts.research.study_keys import make_linkage_statement
from careledger.core.errors import Code
from careledger.research.dataset import CSV_NAME, QI_EXTENSION
from careledger.research.envelope import SealedPackage, SealError, open_release
from careledger.research.release import ReleaseVerificationFailed
from careledger.research.synthetic import generate_patient
from careledger.samples import synthea_bundles
from careledger.vault.canonical import json_of_canonical, parse_exact
from careledger.vault.requests import sign_headers
from support import seeded_key
from support.records import state_snapshot
from support.research_api import DAY_MS, ApiWorld, Patient, shared_world, store

SMALL_CELL = 11
HEX64 = re.compile(r"[0-9a-f]{64}")
"""Hashed ids and references (HMAC-SHA256): digits in them are not data, so the scan leaves them out."""
FULL_DATE = re.compile(r"\b[0-9]{4}-[0-9]{2}-[0-9]{2}\b|T[0-9]{2}:[0-9]{2}")


@dataclass
class Scenario:
    w: ApiWorld
    study: str
    first: dict[str, Any]
    second: dict[str, Any]
    revoked: Patient
    unlinked: Patient
    sources: dict[str, list[dict[str, Any]]]  # patient label -> source resources


def _synthea(w: ApiWorld) -> list[Patient]:
    from careledger.client.records import RecordsClient

    writer = RecordsClient(w.client, w.stewards["hospital"])
    out = []
    for path in synthea_bundles():
        key = seeded_key(f"research-api/synthea/{path.stem}")
        w.ok(w.client.send(key, "identity.register_patient", 1, {}))
        bundle = parse_exact(path.read_bytes())
        patient = Patient(path.stem[:24], key, "hospital", [e["resource"] for e in bundle["entry"]])
        writer.store("hospital", patient.pseudonym, path.read_bytes())
        out.append(patient)
    w.patients += out
    return out


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with shared_world(tmp_path_factory.mktemp("research-api")) as w:
        study = w.register_study()
        hospital = _synthea(w) + w.add_patients("hospital", 20, "hosp")
        clinic = w.add_patients("clinic", 12, "clin")
        unlinked = hospital[-1]
        for p in hospital + clinic:
            w.opt_in(p, study, link=p is not unlinked)
        first = w.client.build_release(w.stewards["hospital"], "hospital", study, w.researcher.public_hex)
        revoked = hospital[3]
        w.ok(w.client.revoke_consent(revoked.study_key(study), w.consents[revoked.label]))
        second = w.client.build_release(w.stewards["hospital"], "hospital", study, w.researcher.public_hex)
        yield Scenario(w, study, first, second, revoked, unlinked, {p.label: p.resources for p in hospital})


def _identifiers(resources: list[dict[str, Any]]) -> set[str]:
    """The test's own reading of what must never leave: names, telecom, addresses, identifier values,
    ids, extension strings and every full date of the source records."""
    out: set[str] = set()
    text = json_of_canonical(json.dumps(resources).encode()).decode()
    out.update(re.findall(r"\b(?:19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}\b", text))
    for r in resources:
        if isinstance(r.get("id"), str):
            out.add(r["id"])
        out.update(i["value"] for i in r.get("identifier") or [] if isinstance(i.get("value"), str))
        if r["resourceType"] != "Patient":
            continue
        for name in r.get("name") or []:
            out.update(name.get("given") or [])
            out.add(name.get("family", ""))
        out.update(t["value"] for t in r.get("telecom") or [])
        for a in r.get("address") or []:
            out.update(a.get("line") or [])
            out.update(x for x in (a.get("city"), a.get("postalCode"), a.get("district")) if x)
        out.update(e["valueString"] for e in r.get("extension") or [] if isinstance(e.get("valueString"), str))
    return {s for s in out if len(s) >= 4}


def _received(s: Scenario, built: dict[str, Any]) -> dict[str, bytes]:
    return s.w.client.fetch_release(s.w.researcher, built["release"]).files


# --- the release ------------------------------------------------------------------------------------------

def test_released_files_hold_no_safe_harbor_identifier(scenario: Scenario) -> None:
    s = scenario
    for built in (s.first, s.second):
        files = _received(s, built)
        assert set(files) >= {"Patient.ndjson", "Observation.ndjson", CSV_NAME}
        text = {name: HEX64.sub("#", data.decode()) for name, data in files.items()}
        for label, resources in s.sources.items():
            found = {i for i in _identifiers(resources) for name, t in text.items() if i in t}
            assert not found, f"{label}: {len(found)} source identifiers survive"
        for name, t in text.items():
            assert not FULL_DATE.search(t), f"{name} keeps a date finer than the year"
        assert built["report"]["rule_version"] == "safe-harbor/v1" and built["report"]["zip3_vintage"] == 2010


def test_every_release_is_k_anonymous_on_its_quasi_identifiers(scenario: Scenario) -> None:
    s = scenario
    for built in (s.first, s.second):
        files = _received(s, built)
        anchor = s.w.client.release_anchor(built["release"])
        classes: Counter[tuple[str, ...]] = Counter()
        for line in files["Patient.ndjson"].decode().splitlines():
            ext = next(e for e in json.loads(line)["extension"] if e["url"] == QI_EXTENSION)
            values = {x["url"]: x["valueString"] for x in ext["extension"]}
            classes[tuple(values[q] for q in anchor["quasi_identifiers"])] += 1
        assert min(classes.values()) >= 5 and min(classes.values()) == anchor["k_achieved"]
        rows = list(csv.DictReader(io.StringIO(files[CSV_NAME].decode())))
        by_row = Counter(tuple(r[q] for q in anchor["quasi_identifiers"]) for r in rows)
        assert by_row == classes and sum(classes.values()) == anchor["subjects"]
        assert anchor["status"] == "complete" and anchor["k_required"] == 5


def test_a_revoked_patient_is_absent_from_the_next_release(scenario: Scenario) -> None:
    s, w = scenario, scenario.w
    view = w.node.store.view()
    first = dict(release_subjects(view, s.first["release"]))
    second = dict(release_subjects(view, s.second["release"]))
    gone = subject_of(s.revoked.key, "study", s.study)
    assert gone in first and gone not in second
    assert set(second) == set(first) - {gone}
    assert subject_of(s.unlinked.key, "study", s.study) not in first  # consented, never linked: a stranger there
    assert s.first["report"]["subjects"] + s.first["report"]["suppressed"] == 21
    assert s.second["report"]["subjects"] + s.second["report"]["suppressed"] == 20
    mine = w.client.research_log(s.revoked.key)
    assert [r["release"] for r in mine["releases"]] == [s.first["release"]]
    other = w.client.research_log(w.patients[4].key)
    assert [r["release"] for r in other["releases"]] == [s.first["release"], s.second["release"]]


def test_the_recipient_verifies_and_a_tampered_dataset_fails(scenario: Scenario, tmp_path: Path) -> None:
    s, w = scenario, scenario.w
    release = s.second["release"]
    checked = w.client.verify_release(w.researcher, release)
    assert checked["verified"] and checked["k"] >= 5 and checked["records"] == s.second["report"]["records"]
    opened = w.client.fetch_release(w.researcher, release)
    write_release_dir(opened, tmp_path / "ok")
    assert w.client.verify_release(None, release, read_release_dir(tmp_path / "ok"))["verified"]

    def tampered(name: str, change: Any) -> None:
        d = tmp_path / name.replace(".", "-")
        write_release_dir(opened, d)
        change(d)
        with pytest.raises(ReleaseVerificationFailed) as err:
            w.client.verify_release(None, release, read_release_dir(d))
        assert err.value.code == Code.RELEASE_VERIFY_FAILED

    def edit(file: str, old: str, new: str) -> Any:
        def change(d: Path) -> None:
            text = (d / file).read_text()
            assert old in text
            (d / file).write_text(text.replace(old, new, 1))
        return change

    tampered("obs", edit("Observation.ndjson", '"status":"final"', '"status":"amended"'))
    tampered("csv", edit(CSV_NAME, "female", "male"))
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    tampered("report", edit("report.json", f'"k_achieved": {report["report"]["k_achieved"]}', '"k_achieved": 99'))
    tampered("drop", lambda d: (d / "Immunization.ndjson").unlink())

    package = w.client.package(w.researcher, release).to_json()
    flipped = package["ciphertext"][:-2] + ("00" if package["ciphertext"][-2:] != "00" else "01")
    with pytest.raises(SealError) as sealed:
        open_release(SealedPackage.from_json({**package, "ciphertext": flipped}), w.researcher)
    assert sealed.value.code == Code.RELEASE_DECRYPT_FAILED
    colleague = seeded_key("research-api/colleague")
    w.ok(w.client.send(seeded_key("admin/research"), "identity.enrol_member", 1,
                       {"member": colleague.public_hex, "org": "research", "roles": ["researcher"]}))
    with pytest.raises(ClientError) as err:
        w.client.package(colleague, release)
    assert (err.value.code, err.value.http_status) == (int(Code.UNAUTHORISED), 403)


def test_refused_releases_carry_a_report_and_write_nothing(scenario: Scenario) -> None:
    w = scenario.w
    few = w.register_study(title="Three patients only")
    for p in w.patients[2:5]:
        w.opt_in(p, few)
    before = state_snapshot(w.node)
    with pytest.raises(ReleaseRefusedError) as err:
        w.client.build_release(w.stewards["hospital"], "hospital", few, w.researcher.public_hex)
    assert (err.value.code, err.value.http_status) == (int(Code.DEID_K_NOT_MET), 422)
    assert err.value.report is not None and err.value.report["k_required"] == 5
    assert err.value.report["patients"] == 3
    assert state_snapshot(w.node) == before and w.client.study(few)["releases"] == []

    leaky_study = w.register_study(title="A record coded with its patient's number")
    resources = generate_patient("leak", 0, 1)
    mrn = next(i["value"] for i in resources[0]["identifier"] if i["value"].startswith("MRN"))
    resources.append({"resourceType": "Observation", "id": "leak-obs-1", "status": "final",
                      "code": {"coding": [{"system": "http://hospital.example/local-codes", "code": mrn}]},
                      "subject": {"reference": f"Patient/{resources[0]['id']}"}})
    leaky = Patient("leaky", seeded_key("research-api/patient/leaky"), "hospital", resources)
    w.ok(w.client.send(leaky.key, "identity.register_patient", 1, {}))
    from careledger.client.records import RecordsClient

    store(RecordsClient(w.client, w.stewards["hospital"]), "hospital", leaky.pseudonym, resources)
    for p in [leaky, *w.patients[5:12]]:
        w.opt_in(p, leaky_study)
    before = state_snapshot(w.node)
    with pytest.raises(ReleaseRefusedError) as err:
        w.client.build_release(w.stewards["hospital"], "hospital", leaky_study, w.researcher.public_hex)
    assert (err.value.code, err.value.http_status) == (int(Code.DEID_IDENTIFIER_LEFT), 422)
    assert err.value.report is not None and err.value.report["patients_affected"] == 1
    assert any("own identifiers" in p for p in err.value.report["problems"])
    assert mrn not in json.dumps(err.value.report) and mrn not in err.value.message
    assert state_snapshot(w.node) == before and w.client.study(leaky_study)["releases"] == []


# --- aggregate queries ------------------------------------------------------------------------------------

def test_every_custodian_answers_under_consent_with_small_cells_suppressed(scenario: Scenario) -> None:
    s, w = scenario, scenario.w
    specs = [{"measure": "count", "group_by": ["sex"]},
             {"measure": "count", "group_by": ["zip3", "birth_decade"]},
             {"measure": "sum", "sum_of": "resources:Encounter", "group_by": []}]
    for spec in specs:
        query = w.ok(w.client.query(w.researcher, s.study, spec))["query"]
        anchors = w.wait_for_answers(query, 2)
        assert sorted(a["custodian"] for a in anchors) == ["clinic", "hospital"]  # answered by themselves
        got = w.client.results(w.researcher, query)  # each answer checked against its anchored hash
        by = {a["custodian"]: a for a in got["answers"]}
        assert by["hospital"]["contributors"] == 20 and by["clinic"]["contributors"] == 12  # revoked, unlinked out
        for a in got["answers"]:
            anchor = next(x for x in anchors if x["custodian"] == a["custodian"])
            assert (anchor["cells"], anchor["suppressed_cells"]) == (len(a["cells"]), a["suppressed_cells"])
            for cell in a["cells"]:
                if cell["suppressed"]:
                    assert cell["count"] is None and cell.get("sum") is None
                else:
                    assert cell["count"] >= SMALL_CELL
            shown = [c for c in a["cells"] if not c["suppressed"]]
            hidden = [c for c in a["cells"] if c["suppressed"]]
            assert len(hidden) != 1 or not shown  # one withheld cell beside shown ones could be subtracted
        if spec["group_by"] == ["zip3", "birth_decade"]:
            assert all(a["suppressed_cells"] > 0 for a in got["answers"])
        if spec["measure"] == "sum":
            assert got["combined"][0]["count"] == 32 and int(got["combined"][0]["sum"]) > 32
    again = w.client.answer(w.stewards["clinic"], "clinic", query)  # asked again: the same anchored answer
    assert again["anchor"]["answer_hash"] == next(a for a in anchors if a["custodian"] == "clinic")["answer_hash"]
    with pytest.raises(ClientError) as err:
        w.client.answer(w.stewards["clinic"], "hospital", query)
    assert (err.value.code, err.value.http_status) == (int(Code.NOT_RELEASE_CUSTODIAN), 403)
    with pytest.raises(ClientError) as err:
        w.client.results(w.stewards["clinic"], query)
    assert (err.value.code, err.value.http_status) == (int(Code.NOT_STUDY_SPONSOR), 403)


# --- the patient's log ------------------------------------------------------------------------------------

def test_only_the_patient_and_her_delegate_read_her_research_log(scenario: Scenario) -> None:
    s, w = scenario, scenario.w
    alice = w.patients[6]
    own = w.client.log_of(study_key(alice.key, "study", s.study))
    assert own["subject"] == subject_of(alice.key, "study", s.study)
    assert [r["release"] for r in own["releases"]] == [s.first["release"], s.second["release"]]
    day = time.strftime("%Y-%m-%d", time.gmtime(own["releases"][0]["time_ms"] / 1000))
    assert own["releases"][0]["text"] == f"de-identified data released to study {s.study} on {day}"
    assert w.client.research_log(alice.key)["studies"] == [s.study]
    lines = [e for e in w.client.access_log(alice.key) if e["kind"] == "research_release"]
    assert [e["release"] for e in lines] == [s.first["release"], s.second["release"]]

    def refused(key: Any, linkage: Any, code: Code, status: int) -> None:
        with pytest.raises(ClientError) as err:
            w.client.log_of(key, linkage)
        assert (err.value.code, err.value.http_status) == (int(code), status)

    now = int(time.time() * 1000)
    statement = make_linkage_statement(alice.key, w.client.chain_id(), "study", s.study, "hospital", now)
    refused(alice.key, None, Code.NOT_PATIENT_OR_DELEGATE, 403)  # her registered key names no study pseudonym
    assert w.client.log_of(alice.key, statement)["subject"] == own["subject"]
    guardian, stranger = seeded_key("research-api/guardian"), seeded_key("research-api/stranger")
    for key in (guardian, stranger):
        w.ok(w.client.send(key, "identity.register_patient", 1, {}))
    refused(guardian, statement, Code.NOT_PATIENT_OR_DELEGATE, 403)
    w.ok(w.client.send(alice.key, "consent.appoint_delegate", 1, {"delegate": guardian.public_hex}))
    assert w.client.log_of(guardian, statement)["releases"] == own["releases"]
    refused(stranger, statement, Code.NOT_PATIENT_OR_DELEGATE, 403)
    forged = {**statement, "study_sig": statement["patient_sig"]}
    refused(guardian, forged, Code.LINKAGE_INVALID, 422)
    refused(study_key(alice.key, "study", s.study), statement, Code.UNKNOWN_SIGNER, 401)  # shown by no member
    # addressed to an organisation whose vault this node does not host: shown to the wrong party
    elsewhere = make_linkage_statement(alice.key, w.client.chain_id(), "study", s.study, "research", now)
    refused(guardian, elsewhere, Code.VAULT_NOT_HOSTED, 404)  # ask that custodian's node
    refused(guardian, {**statement, "extra": 1}, Code.REQUEST_MALFORMED, 400)  # not a linkage statement


# --- bad requests -----------------------------------------------------------------------------------------

Sent = tuple[bytes, dict[str, str]]
"""A request's body and headers, as sent."""


def test_research_requests_are_checked_and_refusals_write_nothing(scenario: Scenario) -> None:
    s, w = scenario, scenario.w
    chain = w.client.chain_id()
    http = httpx.Client(base_url=w.url, timeout=30)

    def signed(key: Any, path: str, kind: str, fields: dict[str, Any], now_ms: int | None = None,
               target: str | None = None) -> Sent:
        """A signed request of ``key`` whose body is ``kind`` (signed for ``target``, else ``path``)."""
        body = json.dumps({"kind": kind, **fields}).encode()
        return body, {**sign_headers(key, chain, "POST", target or path, body, now_ms=now_ms),
                      "content-type": "application/json"}

    def release(key: Any, now_ms: int | None = None, **over: Any) -> Sent:
        fields = {"custodian": "hospital", "recipient": w.researcher.public_hex, "study": s.study, **over}
        return signed(key, "/v1/research/releases", "research-release", fields, now_ms)

    def unsigned(doc: Any) -> Sent:
        return json.dumps(doc).encode(), {"content-type": "application/json"}

    steward = w.stewards["hospital"]
    stale = int(time.time() * 1000) - 10 * 60 * 1000
    ended = w.register_study(title="Ended yesterday", period={"start_ms": stale - 30 * DAY_MS,
                                                              "end_ms": stale - DAY_MS})  # active, but over
    good = release(steward, study="study-" + "0" * 24)
    forged_sig = good[1]["Authorization"].rsplit("sig=", 1)[0] + "sig=" + "00" * 64
    no_release = {"custodian": "hospital", "release": "rel-" + "0" * 24}
    cases: list[tuple[str, Sent, Code]] = [
        ("/v1/research/releases", (good[0], {"content-type": "application/json"}), Code.MISSING_SIGNATURE),
        ("/v1/research/releases", (good[0], {**good[1], "Authorization": forged_sig}), Code.BAD_SIGNATURE),
        ("/v1/research/releases", (good[0].replace(b"study-", b"study-1"), good[1]), Code.BAD_SIGNATURE),  # body
        ("/v1/research/releases", signed(steward, "/v1/research/releases", "research-release",  # another route's
                                         {"custodian": "hospital", "recipient": w.researcher.public_hex,
                                          "study": s.study}, target="/v1/research/answers"), Code.BAD_SIGNATURE),
        ("/v1/research/releases", signed(steward, "/v1/research/releases", "research-package", no_release),
         Code.REQUEST_MALFORMED),
        ("/v1/research/releases", release(steward, requester=steward.public_hex), Code.REQUEST_MALFORMED),
        ("/v1/research/releases", release(steward, now_ms=stale), Code.REQUEST_STALE),
        ("/v1/research/releases", release(w.researcher), Code.NOT_RELEASE_CUSTODIAN),
        ("/v1/research/releases", release(w.stewards["clinic"]), Code.NOT_RELEASE_CUSTODIAN),
        ("/v1/research/releases", release(steward, recipient=w.stewards["clinic"].public_hex),
         Code.RELEASE_RECIPIENT_INVALID),
        ("/v1/research/releases", good, Code.STUDY_UNKNOWN),
        ("/v1/research/releases", release(steward, study=ended), Code.STUDY_CLOSED),  # outside its period
        ("/v1/research/releases", good, Code.REQUEST_REPLAYED),
        ("/v1/research/releases", release(steward, custodian="pharmacy"), Code.VAULT_NOT_HOSTED),
        ("/v1/research/packages", signed(w.researcher, "/v1/research/packages", "research-package", no_release),
         Code.RELEASE_UNKNOWN),
        ("/v1/research/answers", signed(steward, "/v1/research/answers", "research-answer",
                                        {"custodian": "hospital", "query": "rq-" + "0" * 24}), Code.QUERY_UNKNOWN),
        ("/v1/research/linkage", unsigned({"custodian": "hospital", "statement": {"statement": {}}}),
         Code.LINKAGE_INVALID),
        ("/v1/research/linkage", unsigned({"custodian": "hospital", "statement": make_linkage_statement(
            seeded_key("research-api/unregistered"), chain, "study", s.study, "hospital", 0)}), Code.LINKAGE_UNKNOWN),
        ("/v1/research/linkage", unsigned({"custodian": "hospital", "statement": make_linkage_statement(  # to another
            s.unlinked.key, chain, "study", s.study, "clinic", 0)}), Code.LINKAGE_INVALID),
        ("/v1/research/linkage", unsigned({"custodian": "hospital"}), Code.REQUEST_MALFORMED),
        ("/v1/research/log", signed(steward, "/v1/research/log", "research-log", {"linkage": None, "extra": 1}),
         Code.REQUEST_MALFORMED),
        ("/v1/research/log", unsigned({"kind": "research-log"}), Code.MISSING_SIGNATURE),
    ]
    from careledger.api.status import http_status

    before = state_snapshot(w.node)
    try:
        for path, (content, headers), code in cases:
            r = http.post(path, content=content, headers=headers)
            body = r.json()
            assert (body["error"]["code"], r.status_code) == (int(code), http_status(code)), (path, code.name, body)
            assert "report" not in body
        for path in ("linkage", "releases", "packages", "answers", "results", "log"):
            r = http.post(f"/v1/research/{path}", content=b"{}", headers={"content-type": "text/plain"})
            assert r.status_code == 415 and r.json()["error"]["code"] == int(Code.UNSUPPORTED_MEDIA_TYPE)
            headers = {"content-type": "application/json"}  # signed (the signature is checked before the body)
            if path != "linkage":
                headers |= sign_headers(steward, chain, "POST", f"/v1/research/{path}", b"{not json")
            r = http.post(f"/v1/research/{path}", content=b"{not json", headers=headers)
            assert r.status_code == 400 and r.json()["error"]["code"] == int(Code.REQUEST_MALFORMED), (path, r.text)
    finally:
        http.close()
    assert state_snapshot(w.node) == before


def test_the_registry_reads_and_the_openapi_document(scenario: Scenario) -> None:
    s, w = scenario, scenario.w
    listed = {x["id"]: x for x in w.client.studies()}
    assert listed[s.study]["kind"] == "data" and listed[s.study]["status"] == "active"
    detail = w.client.study(s.study)
    assert [r["id"] for r in detail["releases"]] == [s.first["release"], s.second["release"]]
    assert detail["versions"][0]["version"] == 1 and detail["study"]["anonymity"]["k"] == 5
    assert w.client.release_anchor(s.first["release"])["dataset_root"] == s.first["report"]["dataset_root"]
    for path in (f"/v1/research/studies/{'study-' + 'f' * 24}", f"/v1/research/releases/rel-{'0' * 24}",
                 f"/v1/research/queries/rq-{'0' * 24}", "/v1/research/releases/not-an-id"):
        with pytest.raises(ClientError) as err:
            w.client.request("GET", path)
        assert err.value.http_status in (400, 404)
    doc = httpx.get(f"{w.url}/openapi.json").json()
    paths = {p: ops for p, ops in doc["paths"].items() if p.startswith("/v1/research")}
    assert set(paths) == {"/v1/research/studies", "/v1/research/studies/{study}", "/v1/research/releases/{release}",
                          "/v1/research/queries/{query}", "/v1/research/linkage", "/v1/research/releases",
                          "/v1/research/packages", "/v1/research/answers", "/v1/research/results",
                          "/v1/research/log"}
    for path, ops in paths.items():
        for method, op in ops.items():
            assert "$ref" in json.dumps(op["responses"]["200"]), (path, method)
            assert {"400", "500"} <= set(op["responses"]), (path, method)
            if method == "post":
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                assert schema["type"] == "object" and "$ref" not in json.dumps(schema), path
    assert "report" in json.dumps(doc["paths"]["/v1/research/releases"]["post"]["responses"]["422"])


# --- the FHIR facade --------------------------------------------------------------------------------------

def test_the_fhir_facade_serves_research_studies_and_subjects(scenario: Scenario) -> None:
    from fhir.resources.R4B import get_fhir_model_class
    from fhirpy import SyncFHIRClient
    from fhirpy.base.exceptions import ForbiddenError, OperationOutcome

    s, w = scenario, scenario.w

    def token(key: Any) -> str:
        body = json.dumps({"kind": "token"}).encode()
        r = httpx.post(f"{w.url}/fhir/auth/token", content=body, timeout=10,
                       headers={**sign_headers(key, w.client.chain_id(), "POST", "/fhir/auth/token", body),
                                "content-type": "application/json"})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    researcher = SyncFHIRClient(f"{w.url}/fhir", authorization=f"Bearer {token(w.researcher)}")
    studies = researcher.resources("ResearchStudy").search(category="cardiometabolic", status="active").fetch_all()
    assert s.study in {x.id for x in studies}
    study = researcher.reference("ResearchStudy", s.study).to_resource()
    assert study.title == "Cardiometabolic outcomes" and study.sponsor.reference == "Organization/research"
    subjects = researcher.resources("ResearchSubject").search(study=f"ResearchStudy/{s.study}").fetch_all()
    assert len(subjects) == 34  # every consent to the study: hospital and clinic, linked or not
    statuses = Counter(x.status for x in subjects)
    assert statuses == {"on-study": 33, "withdrawn": 1}
    gone = next(x for x in subjects if x.status == "withdrawn")
    assert gone.individual.identifier.value == subject_of(s.revoked.key, "study", s.study)
    raw = httpx.get(f"{w.url}/fhir/ResearchSubject/{gone.id}", timeout=10,
                    headers={"Authorization": f"Bearer {token(w.researcher)}"}).json()
    get_fhir_model_class("ResearchSubject").model_validate(raw)
    consent = raw["contained"][0]
    assert consent["resourceType"] == "Consent" and consent["status"] == "inactive"
    assert consent["scope"]["coding"][0]["code"] == "research" and raw["consent"]["reference"] == "#consent"
    assert "period" in raw and "end" in raw["period"]
    withdrawn = researcher.resources("ResearchSubject").search(study=f"ResearchStudy/{s.study}",
                                                               status="withdrawn").fetch_all()
    assert [x.id for x in withdrawn] == [gone.id]

    patient = SyncFHIRClient(f"{w.url}/fhir", authorization=f"Bearer {token(w.patients[0].key)}")
    assert s.study in {x.id for x in patient.resources("ResearchStudy").fetch_all()}  # the registry is public
    with pytest.raises(ForbiddenError):
        patient.resources("ResearchSubject").search(study=f"ResearchStudy/{s.study}").fetch_all()
    with pytest.raises(OperationOutcome):
        researcher.resources("ResearchSubject").search(status="on-study").fetch_all()  # no study named
    r = httpx.get(f"{w.url}/fhir/ResearchStudy/study-{'0' * 24}", timeout=10,
                  headers={"Authorization": f"Bearer {token(w.researcher)}"})
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    metadata = httpx.get(f"{w.url}/fhir/metadata", timeout=10).json()
    listed = {x["type"]: x for x in metadata["rest"][0]["resource"]}
    assert {p["name"] for p in listed["ResearchSubject"]["searchParam"]} == {"study", "status", "date"}
    assert "ResearchStudy" in listed
