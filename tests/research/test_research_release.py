"""De-identified releases end to end: vault records, consent, k-anonymity, anchor, sealed delivery, verification.

Patients: the two vendored Synthea bundles plus generated ones. The identifier scan here is the
test's own: it reads the source bundles' names, addresses, phone numbers, identifiers, ids and full
dates and looks for each in the raw text of every released file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from careledger.contracts import research as rc
from careledger.contracts.research.study_keys import make_linkage_statement
from careledger.core.errors import Code
from careledger.research import envelope
from careledger.research.config import parse_config, vendored_config
from careledger.research.dataset import CSV_NAME
from careledger.research.release import (
    ReleaseRefused,
    ReleaseReport,
    ReleaseVerificationFailed,
    sign_report,
    verify_release,
    verify_report_signature,
)
from careledger.research.synthetic import generate_patient
from careledger.vault.canonical import json_of_canonical
from support import CHAIN_ID, seeded_key
from support.research import SYNTHEA, World, synthea_resources

GENERATED = 38
HEX64 = re.compile(r"[0-9a-f]{64}")


def _source_identifiers(resources: list[dict[str, Any]]) -> set[str]:
    """What must never appear in a released file: the test's own reading of the source."""
    out: set[str] = set()
    text = json_of_canonical(json.dumps(resources).encode()).decode()
    out.update(re.findall(r"\b(?:19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}\b", text))  # every full date
    for r in resources:
        if isinstance(r.get("id"), str):
            out.add(r["id"])
        for ident in r.get("identifier") or []:
            out.add(ident["value"])
        if r["resourceType"] != "Patient":
            continue
        for name in r.get("name") or []:
            out.update(name.get("given") or [])
            out.add(name.get("family", ""))
        for tel in r.get("telecom") or []:
            out.add(tel["value"])
        for a in r.get("address") or []:
            out.update(a.get("line") or [])
            out.update(x for x in (a.get("city"), a.get("postalCode"), a.get("district")) if x)
        for ext in r.get("extension") or []:
            if isinstance(ext.get("valueString"), str):
                out.add(ext["valueString"])
    return {s for s in out if len(s) >= 4}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = World(tmp_path_factory.mktemp("research"))
    for path in SYNTHEA:
        w.add_patient(path.stem[:20], synthea_resources(path))
    for i in range(GENERATED):
        w.add_patient(f"gen{i}", generate_patient("release", i, encounters=3))
    w.study = w.register_study()  # type: ignore[attr-defined]
    for p in w.people:
        w.opt_in(p, "study", w.study)  # type: ignore[attr-defined]
    return w


@pytest.fixture(scope="module")
def first(world: World) -> dict[str, Any]:
    sid = world.study  # type: ignore[attr-defined]
    built = world.desk.prepare_release(world.view, sid, world.researcher.public_hex, world.as_of_day)
    rid = world.anchor_release(built)
    signature = sign_report(world.vault.gateway_key, CHAIN_ID, built.report)
    package = envelope.pack_release(rid, built.files, built.report.to_json(), signature, world.researcher.public_hex)
    return {"built": built, "release": rid, "package": package, "signature": signature}


def _received(world: World, first: dict[str, Any]) -> tuple[dict[str, bytes], ReleaseReport, Any]:
    files, report, signature = envelope.unpack_release(first["package"], world.researcher)
    verify_report_signature(world.vault.gateway_key.public_hex, CHAIN_ID, ReleaseReport.from_json(report), signature)
    anchor = rc.get_release(world.view, first["release"])
    return files, ReleaseReport.from_json(report), anchor


def test_the_researcher_receives_and_verifies_the_release(world: World, first: dict[str, Any]) -> None:
    files, report, anchor = _received(world, first)
    assert anchor is not None and anchor.status == "complete"
    checked = verify_release(files, report, anchor)
    assert checked["subjects"] == anchor.subjects == report.subjects >= 5
    assert checked["k"] == anchor.k_achieved >= 5 and anchor.records == report.records
    assert anchor.zip3_list == "census-2010" and anchor.zip3_vintage == 2010
    assert anchor.config_hash == vendored_config().config_hash and anchor.rule_version == "safe-harbor/v1"
    assert report.subjects + report.suppressed + report.excluded == len(world.people)
    assert sorted(files) == sorted(["Condition.ndjson", "Encounter.ndjson", "Immunization.ndjson",
                                    "MedicationRequest.ndjson", "Observation.ndjson", "Patient.ndjson",
                                    "Procedure.ndjson", CSV_NAME])


def test_no_safe_harbor_identifier_survives(world: World, first: dict[str, Any]) -> None:
    files, _, _ = _received(world, first)
    text = "\n".join(HEX64.sub("#", data.decode()) for data in files.values()).lower()
    checked = 0
    for person in world.people:
        for value in _source_identifiers(person.resources):
            assert value.lower() not in text, f"a source identifier of length {len(value)} survived"
            checked += 1
    assert checked > 40 * 10  # names, addresses, phones, SSNs, MRNs, ids and dates of every patient
    assert not re.search(r"\b(?:19|20)[0-9]{2}-[0-9]{2}", text)  # no date finer than a year anywhere
    for name in ("Carolee951", "Sanford861", "Luisa710", "Carranza218", "98052", "98053"):
        assert name.lower() not in text


def test_released_resources_are_valid_fhir(world: World, first: dict[str, Any]) -> None:
    files, _, _ = _received(world, first)
    n = 0
    for name, data in files.items():
        if not name.endswith(".ndjson"):
            continue
        model = get_fhir_model_class(name[:-7])
        for line in data.splitlines():
            model.model_validate_json(line)
            n += 1
    assert n == first["built"].report.records


def test_k_anonymity_holds_on_the_csv(world: World, first: dict[str, Any]) -> None:
    files, report, _ = _received(world, first)
    rows = list(csv.DictReader(io.StringIO(files[CSV_NAME].decode())))
    assert len(rows) == report.subjects
    classes = Counter((r["birth_year"], r["sex"], r["zip3"]) for r in rows)
    assert min(classes.values()) == report.k_achieved >= 5
    assert all(r["zip3"] in ("000", "*", "unknown") or re.fullmatch(r"[0-9*]{3}", r["zip3"]) for r in rows)


def test_tampered_datasets_fail_verification(world: World, first: dict[str, Any]) -> None:
    files, report, anchor = _received(world, first)
    assert anchor is not None
    flipped = dict(files)
    flipped["Observation.ndjson"] = files["Observation.ndjson"].replace(b'"final"', b'"amended"', 1)
    with pytest.raises(ReleaseVerificationFailed, match="hash"):
        verify_release(flipped, report, anchor)
    # an attacker who also rewrites the report's file hashes still cannot reach the anchored root
    import hashlib
    forged = ReleaseReport.from_json({**report.to_json(), "files": {
        name: hashlib.sha256(data).hexdigest() for name, data in flipped.items()}})
    with pytest.raises(ReleaseVerificationFailed, match="anchored dataset root"):
        verify_release(flipped, forged, anchor)
    dropped = dict(files)
    dropped["Patient.ndjson"] = b"".join(files["Patient.ndjson"].splitlines(keepends=True)[1:])
    forged = ReleaseReport.from_json({**report.to_json(), "files": {
        name: hashlib.sha256(data).hexdigest() for name, data in dropped.items()}})
    with pytest.raises(ReleaseVerificationFailed):
        verify_release(dropped, forged, anchor)
    csv_edit = dict(files)
    csv_edit[CSV_NAME] = files[CSV_NAME].replace(b",female,", b",male,", 1)
    forged = ReleaseReport.from_json({**report.to_json(), "files": {
        name: hashlib.sha256(data).hexdigest() for name, data in csv_edit.items()}})
    with pytest.raises(ReleaseVerificationFailed, match="CSV"):
        verify_release(csv_edit, forged, anchor)
    claimed = ReleaseReport.from_json({**report.to_json(), "k_achieved": report.k_achieved + 1})
    with pytest.raises(ReleaseVerificationFailed, match="k_achieved"):
        verify_release(files, claimed, anchor)


def test_the_package_opens_only_for_the_recipient(world: World, first: dict[str, Any]) -> None:
    package = first["package"]
    with pytest.raises(envelope.SealError) as err:
        envelope.unpack_release(package, seeded_key("someone else"))
    assert err.value.code == Code.RELEASE_DECRYPT_FAILED
    altered = envelope.SealedPackage(package.header, package.ephemeral, package.nonce,
                                     package.ciphertext[:-1] + bytes([package.ciphertext[-1] ^ 1]))
    with pytest.raises(envelope.SealError):
        envelope.unpack_release(altered, world.researcher)
    relabelled = envelope.SealedPackage({**package.header, "release": "rel-" + "0" * 24}, package.ephemeral,
                                        package.nonce, package.ciphertext)
    with pytest.raises(envelope.SealError):
        envelope.unpack_release(relabelled, world.researcher)
    again = envelope.SealedPackage.from_json(json.loads(json.dumps(package.to_json())))
    assert envelope.unpack_release(again, world.researcher)[0] == first["built"].files


def test_the_report_signature_is_the_custodians(world: World, first: dict[str, Any]) -> None:
    report = first["built"].report
    with pytest.raises(ReleaseVerificationFailed):
        verify_report_signature(world.researcher.public_hex, CHAIN_ID, report, first["signature"])
    changed = ReleaseReport.from_json({**report.to_json(), "suppressed": report.suppressed + 1})
    with pytest.raises(ReleaseVerificationFailed):
        verify_report_signature(world.vault.gateway_key.public_hex, CHAIN_ID, changed, first["signature"])


def test_a_revoked_patient_is_absent_from_the_next_release(world: World, first: dict[str, Any]) -> None:
    sid = world.study  # type: ignore[attr-defined]
    released = dict(rc.release_subjects(world.view, first["release"]))
    person = next(p for p in world.people if p.study_key("study", sid) is not None
                  and rc.compute_study_pseudonym(p.study_key("study", sid).public_hex) in released)
    subject = rc.compute_study_pseudonym(person.study_key("study", sid).public_hex)
    world.ok(person.study_key("study", sid), "research.revoke_consent", {"consent": released[subject]})
    built = world.desk.prepare_release(world.view, sid, world.researcher.public_hex, world.as_of_day)
    assert subject not in dict(built.snapshot)
    source_id = next(r["id"] for r in person.resources if r["resourceType"] == "Patient")
    import hashlib
    import hmac
    hashed = hmac.new(world.desk.hash_key(sid), source_id.encode(), hashlib.sha256).hexdigest()
    assert hashed.encode() in first["built"].files["Patient.ndjson"]  # she was in the first release
    assert all(hashed.encode() not in data for data in built.files.values())  # and is in no file of the next
    rid = world.anchor_release(built)
    assert subject not in dict(rc.release_subjects(world.view, rid))
    assert [e.release for e in rc.seen_by(world.view, subject)] == [first["release"]]


def test_a_small_cohort_is_refused_with_a_report(tmp_path: Path) -> None:
    w = World(tmp_path)
    sid = w.register_study()
    for i in range(3):
        w.opt_in(w.add_patient(f"few{i}", generate_patient("few", i, encounters=1)), "study", sid)
    with pytest.raises(ReleaseRefused) as err:
        w.desk.prepare_release(w.view, sid, w.researcher.public_hex, w.as_of_day)
    assert err.value.code == Code.DEID_K_NOT_MET
    assert err.value.report["patients"] == 3 and err.value.report["k_required"] == 5
    for person in w.people:
        name = person.resources[0]["name"][0]["family"]
        assert name not in str(err.value) and name not in json.dumps(err.value.report)


def test_a_configuration_leaving_identifiers_is_refused(world: World) -> None:
    sid = world.study  # type: ignore[attr-defined]
    doc = json.loads(json.dumps(vendored_config().document))
    doc["fhirPathRules"] = [{"path": "Patient.name", "method": "keep"},
                            {"path": "Condition.note", "method": "keep"}, *doc["fhirPathRules"]]
    world.desk.config = parse_config(doc)
    try:
        with pytest.raises(ReleaseRefused) as err:
            world.desk.prepare_release(world.view, sid, world.researcher.public_hex, world.as_of_day)
    finally:
        world.desk.config = vendored_config()
    assert err.value.code == Code.DEID_IDENTIFIER_LEFT
    problems = err.value.report["problems"]
    assert any(p.startswith("Patient.name.family: HumanName content kept") for p in problems)
    assert "Condition.note.text: Annotation content kept" in problems
    assert any("own identifiers" in p for p in problems)
    assert err.value.report["config_hash"] != vendored_config().config_hash
    for person in world.people:
        for name in person.resources[0].get("name") or []:
            assert name["family"] not in json.dumps(err.value.report)


def test_l_diversity_on_conditions(tmp_path: Path) -> None:
    w = World(tmp_path)
    sid = w.register_study(anonymity={"k": 5, "l": 2, "sensitive_type": "Condition"})
    for i in range(30):
        w.opt_in(w.add_patient(f"l{i}", generate_patient("ldiv", i, encounters=3)), "study", sid)
    built = w.desk.prepare_release(w.view, sid, w.researcher.public_hex, w.as_of_day)
    assert built.report.l_achieved is not None and built.report.l_achieved >= 2
    rows = list(csv.DictReader(io.StringIO(built.files[CSV_NAME].decode())))
    seen: dict[tuple[str, ...], set[str]] = {}
    for r in rows:
        seen.setdefault((r["birth_year"], r["sex"], r["zip3"]), set()).add(r["sensitive"])
    assert min(len(v) for v in seen.values()) == built.report.l_achieved
    rid = w.anchor_release(built)
    anchor = rc.get_release(w.view, rid)
    assert anchor is not None and anchor.l_achieved == built.report.l_achieved and anchor.l_required == 2
    verify_release(built.files, built.report, anchor, sensitive_type="Condition")
    w.ok(w.researcher, "research.new_version", {
        "title": "Stricter", "category": "cardiometabolic", "ethics_ref": "IRB-2025-117",
        "period": {"start_ms": 0}, "request": {"resource_types": ["Condition", "Patient"]},
        "anonymity": {"k": 5, "l": 40, "sensitive_type": "Condition"}, "study": sid, "version": 2})
    with pytest.raises(ReleaseRefused) as err:
        w.desk.prepare_release(w.view, sid, w.researcher.public_hex, w.as_of_day)
    assert err.value.code == Code.DEID_L_NOT_MET


def test_linkage_statements(world: World) -> None:
    sid = world.study  # type: ignore[attr-defined]
    person = world.people[0]
    good = make_linkage_statement(person.key, CHAIN_ID, "study", sid, "hospital", 0)
    assert world.desk.accept_linkage(world.view, good).patient == person.pseudonym
    bad = json.loads(json.dumps(good))
    bad["statement"]["target"] = "study-" + "1" * 24
    for doc in (bad, make_linkage_statement(person.key, "another-chain", "study", sid, "hospital", 0),
                make_linkage_statement(person.key, CHAIN_ID, "study", sid, "clinic", 0), {"statement": 1}):
        with pytest.raises(Exception) as err:
            world.desk.accept_linkage(world.view, doc)
        assert getattr(err.value, "code", None) == Code.LINKAGE_INVALID
    stranger = make_linkage_statement(seeded_key("never registered"), CHAIN_ID, "study", sid, "hospital", 0)
    with pytest.raises(Exception) as err:
        world.desk.accept_linkage(world.view, stranger)
    assert getattr(err.value, "code", None) == Code.LINKAGE_UNKNOWN


def test_an_unlinked_consent_selects_nobody(tmp_path: Path) -> None:
    w = World(tmp_path)
    sid = w.register_study()
    people = [w.add_patient(f"u{i}", generate_patient("unlinked", i, encounters=1)) for i in range(6)]
    for p in people[:5]:
        w.opt_in(p, "study", sid)
    w.opt_in(people[5], "study", sid, link=False)
    study = rc.get_study(w.view, sid)
    assert study is not None
    assert {link.patient for link, _ in w.desk.consenting(w.view, study)} == {p.pseudonym for p in people[:5]}


def test_a_release_is_deterministic_and_independent_of_the_mapper() -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from careledger.contracts.research import Anonymity, RequestedData
    from careledger.research.release import PatientData, ReleaseSpec, build_release
    from careledger.research.synthetic import AS_OF_DAY

    data = [PatientData(f"sp-{i:032x}", f"rcn-{i:024x}", tuple(generate_patient("mapper", i, encounters=2)))
            for i in range(40)]
    spec = ReleaseSpec("study-x", 1, "hospital", "ab" * 32, RequestedData(("Condition", "Observation", "Patient")),
                       Anonymity(), AS_OF_DAY)
    one = build_release(data, spec, vendored_config(), b"k" * 32)
    again = build_release(list(reversed(data)), spec, vendored_config(), b"k" * 32, chunk=7)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        fanned = build_release(data, spec, vendored_config(), b"k" * 32, mapper=pool.map, chunk=9)
    assert one.files == again.files == fanned.files and one.report == again.report == fanned.report
    other_key = build_release(data, spec, vendored_config(), b"j" * 32)
    assert other_key.report.dataset_root != one.report.dataset_root  # subject codes depend on the custodian's key


def test_broad_consent_to_a_category_covers_its_data_studies(tmp_path: Path) -> None:
    from careledger.research.patient import research_log

    w = World(tmp_path)
    sid = w.register_study(category="cardiometabolic")
    people = [w.add_patient(f"b{i}", generate_patient("broad", i, encounters=1)) for i in range(12)]
    for i, p in enumerate(people):
        if i % 2:
            w.opt_in(p, "category", "cardiometabolic")
        else:
            w.opt_in(p, "study", sid)
    built = w.desk.prepare_release(w.view, sid, w.researcher.public_hex, w.as_of_day)
    rid = w.anchor_release(built)
    snapshot = dict(rc.release_subjects(w.view, rid))
    broad = [p for i, p in enumerate(people) if i % 2]
    included = [p for p in broad if rc.compute_study_pseudonym(p.study_key("category", "cardiometabolic").public_hex)
                in snapshot]
    assert included  # broad consents were relied on, under their category pseudonyms
    log = research_log(w.view, included[0].key.seed, [("category", "cardiometabolic"), ("study", sid)])
    assert [(e["study"], e["scope"]) for e in log] == [(sid, "category")]
