"""Safe Harbor de-identification: Microsoft's redaction vectors, the configuration rules, the Synthea bundles."""

from __future__ import annotations

import json
from typing import Any

import pytest

from careledger.core.errors import Code
from careledger.research import dataset as ds
from careledger.research.config import DeidConfigError, microsoft_sample, parse_config, vendored_config
from careledger.research.deid import Deidentifier, unsafe_reason
from careledger.research.fhirtypes import elements_of
from careledger.research.release import source_identifiers, source_quasi_identifiers
from careledger.research.synthetic import AS_OF_DAY, generate_patient
from careledger.research.zip3 import Zip3List, zip3_list
from support.research import DATA, SYNTHEA, synthea_resources

VECTORS = json.loads((DATA / "gs1" / "standards-test-vectors.json").read_text())["hipaa_safe_harbor"]
KEY = b"k" * 32


def _deid(resource: dict[str, Any], config: Any = None, as_of_day: int = AS_OF_DAY) -> dict[str, Any] | None:
    return Deidentifier(config or vendored_config(), KEY, as_of_day).deidentify(resource)


def test_zip3_vectors_of_the_microsoft_anonymizer() -> None:
    """RedactTests.cs with its restricted list {203, 556}: ours keeps the three digits where it keeps
    the ZIP3 (it pads them with zeros), and 000 where it writes 00000."""
    restricted = Zip3List("test", 2000, "RedactTests.cs", frozenset({"203", "556"}))
    for given, expected in VECTORS["ms_partial_redact_vectors"]["zip"]:
        assert restricted.generalise(given) == expected[:3]
    assert restricted.generalise("SW1A 1AA") is None  # not a US ZIP: removed, not generalised


def test_vendored_zip3_lists_are_the_published_ones() -> None:
    assert sorted(zip3_list("census-2000").restricted) == VECTORS["restricted_zip3_hhs_2000_census"]
    assert sorted(zip3_list("census-2010").restricted) == VECTORS["restricted_zip3_ms_anonymizer_default"]
    assert zip3_list("census-2010").vintage == 2010 and zip3_list("census-2010").generalise("20301") == "000"
    with pytest.raises(Exception) as err:
        zip3_list("census-1990")
    assert getattr(err.value, "code", None) == Code.DEID_CONFIG_INVALID


@pytest.mark.parametrize("kind", ["date", "dateTime"])
def test_date_vectors_keep_the_year_or_drop_ages_over_89(kind: str) -> None:
    for given, expected in VECTORS["ms_partial_redact_vectors"][kind]:
        field = "birthDate" if kind == "date" else "deceasedDateTime"
        out = _deid({"resourceType": "Patient", "id": "x", field: given})
        assert out is not None
        assert out.get(field) == (None if expected is None else expected[:4])


def test_age_vectors_and_the_90_or_older_group() -> None:
    for given, expected in VECTORS["ms_partial_redact_vectors"]["age"]:
        out = _deid({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"},
                     "onsetAge": {"value": given, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}})
        assert out is not None
        assert (out.get("onsetAge") or {}).get("value") == expected
    config = vendored_config()
    # AS_OF_DAY is 2025-06-30: born 1935-06-30 she is 90 that day; born a day later, 89 until the next
    assert source_quasi_identifiers({"birthDate": "1935-06-30"}, config, AS_OF_DAY)["birth_year"] == "90+"
    assert source_quasi_identifiers({"birthDate": "1935-07-01"}, config, AS_OF_DAY)["birth_year"] == "1935"
    assert source_quasi_identifiers({"birthDate": "1935-07-01"}, config, AS_OF_DAY + 1)["birth_year"] == "90+"
    assert source_quasi_identifiers({"birthDate": "1935"}, config, AS_OF_DAY)["birth_year"] == "90+"  # may be 90
    assert source_quasi_identifiers({}, config, AS_OF_DAY) == {"birth_year": "unknown", "sex": "unknown",
                                                                "zip3": "unknown"}


def test_the_microsoft_sample_is_refused_and_why() -> None:
    with pytest.raises(DeidConfigError, match="vendored ZIP3 list"):
        parse_config(microsoft_sample())
    doc = microsoft_sample()
    del doc["parameters"]["restrictedZipCodeTabulationAreas"]
    doc["careledger"] = {"ruleVersion": "ms/v1", "zip3List": "census-2010", "releasableResourceTypes": ["Patient"]}
    with pytest.raises(DeidConfigError, match="perturb"):
        parse_config(doc)
    doc["fhirPathRules"] = [r for r in doc["fhirPathRules"] if r["method"] != "perturb"]
    with pytest.raises(DeidConfigError, match="Expert Determination"):
        parse_config(doc)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["fhirPathRules"].append({"path": "Patient.name", "method": "perturb"}), "perturb"),
    (lambda d: d["fhirPathRules"].append({"path": "Patient.where(x)", "method": "redact"}), "FHIRPath"),
    (lambda d: d["parameters"].update(cryptoHashKey="secret"), "keys are supplied"),
    (lambda d: d.update(fhirVersion="Stu3"), "R4"),
    (lambda d: d.update(processingErrors="keep"), "raise"),
    (lambda d: d["careledger"].update(zip3List="census-1990"), "ZIP3 list"),
    (lambda d: d.pop("careledger"), "careledger block"),
])
def test_configuration_refusals(change: Any, message: str) -> None:
    doc = json.loads(json.dumps(vendored_config().document))
    change(doc)
    with pytest.raises(DeidConfigError, match=message) as err:
        parse_config(doc)
    assert err.value.code == Code.DEID_CONFIG_INVALID


def test_ours_redacts_every_type_the_microsoft_sample_redacts() -> None:
    """The sample's type-wide redactions are all ours too, except Coding.code (clinical codes are not
    identifiers) and the sample's date shifting, which ours replaces by partial redaction."""
    ours = {(r.path, r.method) for r in vendored_config().rules}
    checked = 0
    for rule in microsoft_sample()["fhirPathRules"]:
        path, method = rule["path"], rule["method"]
        if not path.startswith("nodesByType(") or method not in ("redact", "dateshift"):
            continue
        if path == "nodesByType('Coding').code":
            continue
        owner, _, element = path.partition(").")
        owner_type = owner[len("nodesByType('"):-1]
        leaf_type = elements_of(owner_type)[element].type if element else owner_type
        assert {(path, "redact"), (owner + ")", "redact"), (f"nodesByType('{leaf_type}')", "redact")} & ours, path
        checked += 1
    assert checked == 20  # every type-wide rule of the sample but Coding.code


def test_config_hash_is_stable_and_names_the_document() -> None:
    a, b = vendored_config(), parse_config(json.loads(json.dumps(vendored_config().document)))
    assert a.config_hash == b.config_hash and len(a.config_hash) == 64
    doc = json.loads(json.dumps(vendored_config().document))
    doc["fhirPathRules"].pop()
    assert parse_config(doc).config_hash != a.config_hash


@pytest.mark.parametrize("path", SYNTHEA, ids=lambda p: p.stem[:16])
def test_synthea_bundle_de_identified_resource_by_resource(path: Any) -> None:
    resources = synthea_resources(path)
    ids = {r["id"]: r["resourceType"] for r in resources}
    d = Deidentifier(vendored_config(), KEY, AS_OF_DAY)
    pattern = ds.IdentifierSet(source_identifiers(resources))
    released = [out for r in resources if (out := d.deidentify(r, ids)) is not None]
    assert {r["resourceType"] for r in released} <= set(vendored_config().releasable_types)
    assert not any(r["resourceType"] in ("Claim", "ExplanationOfBenefit", "Organization", "Practitioner",
                                         "DocumentReference", "Provenance") for r in released)
    for r in released:
        assert ds.safe_harbor_violations(r, pattern) == [], r["resourceType"]
    patient = next(r for r in released if r["resourceType"] == "Patient")
    assert set(patient) <= {"resourceType", "id", "meta", "gender", "birthDate", "address", "maritalStatus",
                            "communication", "multipleBirthBoolean", "deceasedBoolean", "deceasedDateTime"}
    assert len(patient["birthDate"]) == 4 and patient["address"][0]["postalCode"] == "980"
    # references still join inside the release
    subject = f"Patient/{patient['id']}"
    assert all(r.get("subject", r.get("patient", {"reference": subject}))["reference"] == subject
               for r in released if r["resourceType"] != "Patient")


def test_the_safe_harbor_check_sees_what_a_bad_configuration_leaves() -> None:
    person = generate_patient("check", 0, encounters=1)
    leak = {**person[0], "id": "e" * 64}
    problems = ds.safe_harbor_violations(leak, ds.IdentifierSet(source_identifiers(person)))
    for expected in ("Patient.text: a Narrative element", "Patient.identifier: a Identifier element",
                     "Patient.name: a HumanName element", "Patient.telecom: a ContactPoint element",
                     "Patient.birthDate: a date finer than the year", "Patient.extension: an extension",
                     "Patient.address.line: an address part smaller than a State"):
        assert expected in problems
    assert unsafe_reason(("name", "family"), ("HumanName", "string"), "keep") == "HumanName content kept"
    assert unsafe_reason(("name", "family"), ("HumanName", "string"), "redact") is None
    assert unsafe_reason(("code", "coding", "code"), ("CodeableConcept", "Coding", "code"), "keep") is None
    assert unsafe_reason(("subject", "reference"), ("Reference", "string"), "keep") == \
        "a reference kept unpseudonymised"


def test_ages_over_89_become_90_or_older_in_the_quasi_identifiers() -> None:
    old = {"resourceType": "Patient", "id": "p", "birthDate": "1925-02-07", "gender": "female",
           "address": [{"postalCode": "05301", "state": "VT"}]}
    out = _deid(old)
    assert out is not None and "birthDate" not in out and out["address"] == [{"postalCode": "053", "state": "VT"}]
    assert source_quasi_identifiers(old, vendored_config(), AS_OF_DAY) == {"birth_year": "90+", "sex": "female",
                                                                           "zip3": "053"}
