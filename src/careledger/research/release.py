"""Building a de-identified release at a custodian, its signed report, and the recipient's check (pure).

:func:`build_release` turns the records of consenting patients into a release, or refuses:

1. keep the patients in the study's cohort (judged on their source records);
2. de-identify every record of a requested (and consented) type with the Safe Harbor configuration
   (:mod:`.deid`), then keep only the requested elements;
3. read each patient's quasi-identifiers from the source Patient at their Safe Harbor level (birth
   year or ``90+``, sex, ZIP3 or ``000``) and generalise and suppress to k (and l) (:mod:`.kanon`);
4. write the generalised values into the released Patient (and remove birth date, gender and postal
   codes it would otherwise carry), label every resource's ``meta.security`` with what was done;
5. check every released resource against Safe Harbor and against the patient's own source
   identifiers (names, addresses, phone numbers, identifiers, full dates), measure k and l again on
   the released resources, and refuse on any failure with a report of why (paths, never values);
6. write the NDJSON files and the flat CSV, the dataset root and the consent snapshot root.

Refusals are :class:`ReleaseRefused` (DEID_IDENTIFIER_LEFT, DEID_K_NOT_MET, DEID_L_NOT_MET,
DEID_EMPTY_RELEASE) with a ``report``. The report of a release is signed by the custodian
(:func:`sign_report`); :func:`verify_release` is the recipient's check against the ledger's anchor.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from careledger.contracts.research.layout import MIN_K, Anonymity, ReleaseRecord, RequestedData, snapshot_leaf
from careledger.core import codec
from careledger.core.crypto import ED25519_SHA256, SigningKey, parse_public_key
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.merkle import merkle_root
from careledger.research import dataset as ds
from careledger.research.config import DeidConfig
from careledger.research.deid import Deidentifier, age_on, date_of_day
from careledger.research.fhirtypes import elements_of
from careledger.research.kanon import NINETY_PLUS, UNKNOWN, AnonymityNotMet, anonymise

REPORT_TAG = b"careledger/research/release-report/v1\x00"
ALWAYS_KEPT = ("resourceType", "id", "meta", "subject", "patient")
MAX_PROBLEMS = 20
_IDENTIFYING_TYPES = frozenset({"HumanName", "ContactPoint", "Identifier", "Attachment"})
_ADDRESS_PARTS = ("line", "city", "district", "postalCode", "text")


class ReleaseRefused(LedgerError):
    """A release the kernel will not produce; ``report`` says why (no values, only paths and counts)."""

    default_code = Code.DEID_K_NOT_MET

    def __init__(self, message: str, report: dict[str, Any], code: Code | None = None) -> None:
        super().__init__(message, code)
        self.report = report


class ReleaseVerificationFailed(LedgerError):
    default_code = Code.RELEASE_VERIFY_FAILED


@dataclass(frozen=True, slots=True)
class PatientData:
    """One consenting patient at this custodian: the study pseudonym and consent relied on (they go to
    the ledger's snapshot, never into the data), the source records, and the consent's type limits."""

    subject: str
    consent: str
    resources: tuple[dict[str, Any], ...]
    resource_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReleaseSpec:
    study: str
    study_version: int
    custodian: str
    recipient: str
    request: RequestedData
    anonymity: Anonymity
    as_of_day: int


@dataclass(frozen=True, slots=True)
class ReleaseReport:
    """What the custodian attests about a release (signed), and what the ledger anchors."""

    study: str
    study_version: int
    custodian: str
    recipient: str
    dataset_root: str
    records: int
    subjects: int
    suppressed: int
    excluded: int
    snapshot_root: str
    resource_types: tuple[str, ...]
    quasi_identifiers: tuple[str, ...]
    levels: tuple[int, ...]
    k_required: int
    k_achieved: int
    l_required: int | None
    l_achieved: int | None
    config_hash: str
    rule_version: str
    zip3_list: str
    zip3_vintage: int
    as_of_day: int
    files: tuple[tuple[str, str], ...]  # (file name, SHA-256 hex)

    def to_json(self) -> dict[str, Any]:
        return {"as_of_day": self.as_of_day, "config_hash": self.config_hash, "custodian": self.custodian,
                "dataset_root": self.dataset_root, "excluded": self.excluded, "files": dict(self.files),
                "k_achieved": self.k_achieved, "k_required": self.k_required, "l_achieved": self.l_achieved,
                "l_required": self.l_required, "levels": list(self.levels),
                "quasi_identifiers": list(self.quasi_identifiers), "recipient": self.recipient,
                "records": self.records, "resource_types": list(self.resource_types),
                "rule_version": self.rule_version, "snapshot_root": self.snapshot_root, "study": self.study,
                "study_version": self.study_version, "subjects": self.subjects, "suppressed": self.suppressed,
                "zip3_list": self.zip3_list, "zip3_vintage": self.zip3_vintage}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ReleaseReport:
        return cls(study=doc["study"], study_version=doc["study_version"], custodian=doc["custodian"],
                   recipient=doc["recipient"], dataset_root=doc["dataset_root"], records=doc["records"],
                   subjects=doc["subjects"], suppressed=doc["suppressed"], excluded=doc["excluded"],
                   snapshot_root=doc["snapshot_root"], resource_types=tuple(doc["resource_types"]),
                   quasi_identifiers=tuple(doc["quasi_identifiers"]), levels=tuple(doc["levels"]),
                   k_required=doc["k_required"], k_achieved=doc["k_achieved"], l_required=doc["l_required"],
                   l_achieved=doc["l_achieved"], config_hash=doc["config_hash"], rule_version=doc["rule_version"],
                   zip3_list=doc["zip3_list"], zip3_vintage=doc["zip3_vintage"], as_of_day=doc["as_of_day"],
                   files=tuple(sorted(doc["files"].items())))

    def release_payload(self, entries: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        """The ``research.release`` payload anchoring this report, with the first snapshot ``entries``."""
        return {"as_of_day": self.as_of_day, "config_hash": self.config_hash, "custodian": self.custodian,
                "dataset_root": self.dataset_root, "entries": [{"consent": c, "subject": s} for s, c in entries],
                "k_achieved": self.k_achieved, "l_achieved": self.l_achieved,
                "quasi_identifiers": list(self.quasi_identifiers), "recipient": self.recipient,
                "records": self.records, "resource_types": list(self.resource_types),
                "rule_version": self.rule_version, "snapshot_root": self.snapshot_root, "study": self.study,
                "study_version": self.study_version, "subjects": self.subjects, "suppressed": self.suppressed,
                "zip3_list": self.zip3_list, "zip3_vintage": self.zip3_vintage}


@dataclass(frozen=True, slots=True)
class BuiltRelease:
    """A release ready to anchor and deliver: its files, its report and its consent snapshot."""

    files: dict[str, bytes]
    report: ReleaseReport
    snapshot: tuple[tuple[str, str], ...]  # (study pseudonym, consent), by pseudonym
    generalisation: dict[str, int] = field(default_factory=dict)


# --- the source side ---------------------------------------------------------------------------------------

def _source_patient(resources: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    return patients[0] if len(patients) == 1 else None


def source_quasi_identifiers(patient: Mapping[str, Any], config: DeidConfig, as_of_day: int) -> dict[str, str]:
    """The Safe Harbor level of a source Patient's quasi-identifiers: birth year (``90+`` over 89,
    ``unknown`` without a birth date), sex (``unknown`` without one), ZIP3 of the home (else first)
    address (``000`` for a restricted area, ``unknown`` without a US ZIP)."""
    as_of = date_of_day(as_of_day)
    birth = patient.get("birthDate")
    age = age_on(birth, as_of) if type(birth) is str else None
    birth_year = UNKNOWN if age is None else NINETY_PLUS if age > 89 else str(birth)[:4]
    gender = patient.get("gender")
    addresses = [a for a in patient.get("address") or [] if type(a) is dict]
    home = next((a for a in addresses if a.get("use") == "home"), addresses[0] if addresses else None)
    postal = home.get("postalCode") if home else None
    zip3 = (config.zip3.generalise(postal) if type(postal) is str else None) or UNKNOWN
    return {"birth_year": birth_year, "sex": gender if type(gender) is str else UNKNOWN, "zip3": zip3}


def in_cohort(request: RequestedData, resources: Sequence[Mapping[str, Any]], patient: Mapping[str, Any]) -> bool:
    """Does a patient meet the study's cohort criteria, judged on the source records?"""
    c = request.cohort
    if c.sex and patient.get("gender") not in c.sex:
        return False
    if c.birth_year_min is not None or c.birth_year_max is not None:
        birth = patient.get("birthDate")
        if type(birth) is not str or not birth[:4].isdigit():
            return False
        year = int(birth[:4])
        if (c.birth_year_min is not None and year < c.birth_year_min) or (
                c.birth_year_max is not None and year > c.birth_year_max):
            return False
    if c.conditions_any:
        wanted = set(c.conditions_any)
        return any(code in wanted for r in resources if r.get("resourceType") == "Condition" for code in ds.codes_of(r))
    return True


def _collect(value: Any, fhir_type: str, out: set[str], inside: bool) -> None:
    if type(value) is list:
        for item in value:
            _collect(item, fhir_type, out, inside)
        return
    if type(value) is dict:
        here = inside or fhir_type in _IDENTIFYING_TYPES
        known = elements_of(fhir_type)
        for key, item in value.items():
            info = known.get(key)
            if info is None:
                continue
            if fhir_type == "Address" and key not in _ADDRESS_PARTS:
                continue
            if info.type == "Extension":  # extensions (maiden names, birth places) count as identifying
                _collect_extension(item, out)
                continue
            _collect(item, info.type, out, here or fhir_type == "Address")
        return
    if type(value) is str and inside and not value.startswith(("http://", "https://", "urn:oid:")):
        out.add(value)


def _collect_extension(value: Any, out: set[str]) -> None:
    for ext in value if type(value) is list else [value]:
        if type(ext) is not dict:
            continue
        for key, item in ext.items():
            if key == "extension":
                _collect_extension(item, out)
            elif key == "valueString" and type(item) is str:
                out.add(item)
            elif key == "valueAddress":
                _collect(item, "Address", out, True)


def source_identifiers(resources: Sequence[Mapping[str, Any]]) -> set[str]:
    """The patient's identifying strings in her source records: from her Patient resource, names
    (hers and her contacts'), address lines, cities, districts and postal codes, telecom values,
    identifier values, attachment URLs, extension values (maiden names, birth places) and the full
    dates of birth and death; from every record, its identifier values and its resource id. Strings
    under 4 characters are left out."""
    out: set[str] = set()
    for r in resources:
        rtype = str(r.get("resourceType"))
        if rtype in ("Patient", "RelatedPerson"):
            _collect(r, rtype, out, False)
        elif "identifier" in r:
            _collect(r.get("identifier"), "Identifier", out, True)
        if type(r.get("id")) is str:
            out.add(r["id"])
        if rtype == "Patient":
            for key in ("birthDate", "deceasedDateTime"):
                if type(r.get(key)) is str and len(r[key]) >= 10:
                    out.add(r[key][:10])
    return {s.strip() for s in out if len(s.strip()) >= 4}


# --- building ------------------------------------------------------------------------------------------------

def _project(resource: dict[str, Any], wanted: Mapping[str, set[str]]) -> dict[str, Any]:
    names = wanted.get(str(resource["resourceType"]))
    if not names:
        return resource
    known = elements_of(str(resource["resourceType"]))
    return {k: v for k, v in resource.items()
            if k in ALWAYS_KEPT or (k in known and known[k].name in names)}


def _label(resource: dict[str, Any], codes: Sequence[str]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    security = [c for c in meta.get("security") or []
                if not (type(c) is dict and c.get("system") == ds.SECURITY_SYSTEM)]
    security.extend({"code": code, "system": ds.SECURITY_SYSTEM} for code in codes)
    meta["security"] = security
    return {**resource, "meta": meta}


def _patient_output(patient: dict[str, Any], qis: Sequence[str], values: Mapping[str, str],
                    generalised: bool) -> dict[str, Any]:
    out = dict(patient)
    if "birth_year" in qis:
        out.pop("birthDate", None)
    if "sex" in qis:
        out.pop("gender", None)
    if "zip3" in qis and "address" in out:
        addresses = [{k: v for k, v in a.items() if k != "postalCode"} for a in out["address"]]
        addresses = [a for a in addresses if a]
        if addresses:
            out["address"] = addresses
        else:
            del out["address"]
    out["extension"] = [ds.qi_extension({q: values[q] for q in qis})]
    return _label(out, ("REDACTED", "PSEUDED", *(("ABSTRED",) if generalised else ())))


def _text_problems(texts: list[str], sources: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why the strings a patient's released records keep are not safe: a date finer than a year, or
    one of the patient's own source identifiers (reported by kind, never by value)."""
    joined = "\n".join(t for t in texts if not ds.HASHED.fullmatch(t))
    found = []
    if ds.FINER_THAN_YEAR.search(joined):
        found.append("a kept string holds a date or time finer than the year")
    if ds.IdentifierSet(source_identifiers(sources)).found_in(joined):
        found.append("a kept string holds one of the patient's own identifiers")
    return found


def _refuse(message: str, code: Code, report: dict[str, Any]) -> ReleaseRefused:
    return ReleaseRefused(message, report, code)


@dataclass(frozen=True, slots=True)
class _Stage:
    """What the per-patient stage needs: picklable, so a shell may fan patients out over processes."""

    spec: ReleaseSpec
    config: DeidConfig
    hash_key: bytes


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One patient after the per-patient stage (``patient_out`` None: excluded)."""

    patient: PatientData
    patient_out: dict[str, Any] | None
    released: list[dict[str, Any]]
    quasi_identifiers: dict[str, str]
    problems: list[str]


_DEIDENTIFIERS: dict[tuple[str, bytes, int], Deidentifier] = {}


def _deidentifier(stage: _Stage) -> Deidentifier:
    """One de-identifier per configuration, key and day in this process (its plans are only caches)."""
    key = (stage.config.config_hash, stage.hash_key, stage.spec.as_of_day)
    d = _DEIDENTIFIERS.get(key)
    if d is None:
        _DEIDENTIFIERS.clear()
        d = _DEIDENTIFIERS[key] = Deidentifier(stage.config, stage.hash_key, stage.spec.as_of_day)
    return d


def prepare_patients(stage: _Stage, patients: Sequence[PatientData]) -> list[_Prepared]:
    """The per-patient stage of a release: cohort, Safe Harbor, element projection, the identifier checks
    and the Safe Harbor quasi-identifiers. Pure (a cache of rule plans aside); order is kept."""
    spec, config = stage.spec, stage.config
    deid = _deidentifier(stage)
    requested = set(spec.request.resource_types) | {"Patient"}
    wanted: dict[str, set[str]] = {}
    for e in spec.request.elements:
        rtype, name = e.split(".", 1)
        wanted.setdefault(rtype, set()).add(name)
    out: list[_Prepared] = []
    for p in patients:
        source = _source_patient(p.resources)
        if source is None or not in_cohort(spec.request, p.resources, source):
            out.append(_Prepared(p, None, [], {}, []))
            continue
        allowed = (requested & set(p.resource_types)) | {"Patient"} if p.resource_types else requested
        id_types = {str(r["id"]): str(r["resourceType"]) for r in p.resources if type(r.get("id")) is str}
        released: list[dict[str, Any]] = []
        patient_out: dict[str, Any] | None = None
        texts: list[str] = []
        problems: list[str] = []
        for r in p.resources:
            if r.get("resourceType") not in allowed:
                continue
            res, kept_texts, unsafe = deid.inspect(r, id_types)
            problems.extend(unsafe)
            if res is None or type(res.get("id")) is not str:
                continue
            res = _project(res, wanted)
            texts.extend(kept_texts)
            if r is source:
                patient_out = res
            else:
                released.append(res)
        if patient_out is not None:
            problems.extend(_text_problems(texts, p.resources))
        out.append(_Prepared(p, patient_out, released, source_quasi_identifiers(source, config, spec.as_of_day),
                             problems))
    return out


Mapper = Callable[[Callable[[Sequence[PatientData]], list[_Prepared]], Sequence[Sequence[PatientData]]],
                  Iterable[list[_Prepared]]]


def build_release(patients: Sequence[PatientData], spec: ReleaseSpec, config: DeidConfig,
                  hash_key: bytes, mapper: Mapper | None = None, chunk: int = 200) -> BuiltRelease:
    """Build the release of ``patients`` for ``spec`` (see the module docstring), or raise :class:`ReleaseRefused`.

    ``mapper`` (default: the built-in ``map``) runs the per-patient stage over chunks of ``chunk``
    patients; a shell may pass a process pool's ordered ``map`` (with :func:`functools.partial` of
    :func:`prepare_patients`) to use more cores. The result does not depend on it.
    """
    a = spec.anonymity
    qis = a.quasi_identifiers
    k_required = max(MIN_K, a.k)
    ordered = sorted(patients, key=lambda x: x.subject)
    work = functools.partial(prepare_patients, _Stage(spec, config, hash_key))
    chunks = [ordered[i:i + chunk] for i in range(0, len(ordered), chunk)]
    prepared = [x for part in (mapper or map)(work, chunks) for x in part]
    candidates = [(x.patient, x.patient_out, x.released, x.quasi_identifiers) for x in prepared
                  if x.patient_out is not None]
    excluded = len(prepared) - len(candidates)
    problems = [msg for x in prepared for msg in x.problems]
    affected = sum(1 for x in prepared if x.problems)
    if problems:
        raise _refuse(f"{max(affected, 1)} patient(s) would be released with Safe Harbor identifiers left",
                      Code.DEID_IDENTIFIER_LEFT,
                      {"check": "safe-harbor", "patients_affected": affected,
                       "problems": sorted(set(problems))[:MAX_PROBLEMS], "config_hash": config.config_hash,
                       "rule_version": config.rule_version})
    base = [tuple(q[name] for name in qis) for _, _, _, q in candidates]
    sensitive = None
    if a.sensitive_type is not None:
        sensitive = [ds.sensitive_value(rs, a.sensitive_type, a.sensitive_codes) for _, _, rs, _ in candidates]
    try:
        chosen = anonymise(qis, base, k_required, a.l, sensitive, a.max_suppression_bp)
    except AnonymityNotMet as exc:
        raise _refuse(exc.message, exc.code, {**exc.report, "excluded": excluded}) from None
    generalised = any(chosen.levels)
    resources: list[dict[str, Any]] = []
    snapshot: list[tuple[str, str]] = []
    for (p, patient_out, rs, _), row in zip(candidates, chosen.rows, strict=True):
        if row is None:
            continue
        resources.append(_patient_output(patient_out, qis, dict(zip(qis, row, strict=True)), generalised))
        resources.extend(_label(r, ("REDACTED", "PSEUDED")) for r in rs)
        snapshot.append((p.subject, p.consent))
    k, l_value, n = ds.measure(resources, qis, a.sensitive_type, a.sensitive_codes)
    if n == 0 or k < k_required:
        raise _refuse(f"the released data has k = {k}, below {k_required}", Code.DEID_K_NOT_MET,
                      {"check": "k-anonymity", "k_required": k_required, "k_achieved": k})
    if a.l is not None and (l_value is None or l_value < a.l):
        raise _refuse(f"the released data has l = {l_value}, below {a.l}", Code.DEID_L_NOT_MET,
                      {"check": "l-diversity", "l_required": a.l, "l_achieved": l_value})
    files, leaves = ds.encode_files(resources)
    types = tuple(sorted({str(r["resourceType"]) for r in resources}))
    files[ds.CSV_NAME] = ds.flat_csv(resources, qis, a.sensitive_type, a.sensitive_codes, types)
    snapshot.sort()
    report = ReleaseReport(
        study=spec.study, study_version=spec.study_version, custodian=spec.custodian, recipient=spec.recipient,
        dataset_root=ds.dataset_root(leaves), records=len(leaves), subjects=n, suppressed=chosen.suppressed,
        excluded=excluded, snapshot_root=snapshot_root(snapshot), resource_types=types, quasi_identifiers=qis,
        levels=chosen.levels, k_required=k_required, k_achieved=k, l_required=a.l, l_achieved=l_value,
        config_hash=config.config_hash, rule_version=config.rule_version, zip3_list=config.zip3.id,
        zip3_vintage=config.zip3.vintage, as_of_day=spec.as_of_day,
        files=tuple(sorted((name, hashlib.sha256(data).hexdigest()) for name, data in files.items())))
    return BuiltRelease(files, report, tuple(snapshot), dict(zip(qis, chosen.levels, strict=True)))


def snapshot_root(snapshot: Sequence[tuple[str, str]]) -> str:
    """The Merkle root of the consent snapshot, ``(subject, consent)`` pairs in subject order."""
    return merkle_root([snapshot_leaf(s, c) for s, c in sorted(snapshot)]).hex()


# --- the signed report ---------------------------------------------------------------------------------------

def sign_report(key: SigningKey, chain_id: str, report: ReleaseReport) -> str:
    """The custodian's signature (hex) over the canonical report, in the ``proof`` domain."""
    return key.sign("proof", chain_id, REPORT_TAG + codec.encode(report.to_json())).hex()


def verify_report_signature(public_key_hex: str, chain_id: str, report: ReleaseReport, signature_hex: str) -> None:
    """Raise :class:`ReleaseVerificationFailed` unless the custodian key signed this report."""
    try:
        ED25519_SHA256.verify(parse_public_key(public_key_hex), "proof", chain_id,
                              REPORT_TAG + codec.encode(report.to_json()), bytes.fromhex(signature_hex))
    except (AuthError, ValueError):
        raise ReleaseVerificationFailed("the release report is not signed by that custodian key") from None


# --- the recipient's check -----------------------------------------------------------------------------------

_ANCHORED = ("study", "study_version", "custodian", "recipient", "dataset_root", "records", "subjects", "suppressed",
             "snapshot_root", "config_hash", "rule_version", "zip3_list", "zip3_vintage", "k_required", "k_achieved",
             "l_required", "l_achieved", "as_of_day")


def verify_release(files: Mapping[str, bytes], report: ReleaseReport, anchor: ReleaseRecord,
                   sensitive_codes: Sequence[str] = (), sensitive_type: str | None = None) -> dict[str, Any]:
    """Check a received release against its ledger anchor; returns what was checked.

    In order: the report says what the anchor says; the anchor is complete; every file has the hash the
    report gives; the NDJSON lines are canonical, ordered and give the anchored Merkle root and record
    count; every resource passes the Safe Harbor check; k (and l) measured on the received Patients are
    the anchored ones and meet the requirement; the CSV is the one the NDJSON gives.
    Raises :class:`ReleaseVerificationFailed` (RELEASE_VERIFY_FAILED) at the first failure.
    """
    def fail(why: str) -> ReleaseVerificationFailed:
        return ReleaseVerificationFailed(f"release {anchor.id}: {why}")

    stated = report.to_json()
    anchored = anchor.to_json()
    for name in _ANCHORED:
        if stated[name] != anchored[name]:
            raise fail(f"the report's {name} is not the anchored one")
    if tuple(report.quasi_identifiers) != anchor.quasi_identifiers or report.resource_types != anchor.resource_types:
        raise fail("the report's quasi-identifiers or resource types are not the anchored ones")
    if anchor.status != "complete":
        raise fail("the anchor is not complete (its consent snapshot is still arriving)")
    if sorted(files) != sorted(name for name, _ in report.files):
        raise fail("the files received are not the files of the report")
    for name, digest in report.files:
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise fail(f"{name} does not have the hash the report gives")
    try:
        resources, leaves = ds.decode_files(files)
    except ds.DatasetError as exc:
        raise fail(str(exc)) from None
    if ds.dataset_root(leaves) != anchor.dataset_root or len(leaves) != anchor.records:
        raise fail("the records do not give the anchored dataset root")
    for r in resources:
        problems = ds.safe_harbor_violations(r)
        if problems:
            raise fail(f"a {r['resourceType']} breaks Safe Harbor ({problems[0]})")
    k, l_value, n = ds.measure(resources, anchor.quasi_identifiers, sensitive_type, sensitive_codes)
    if n != anchor.subjects or k != anchor.k_achieved or k < max(MIN_K, anchor.k_required):
        raise fail(f"k measured on the data is {k} over {n} patients, not the anchored {anchor.k_achieved}")
    if anchor.l_required is not None and (l_value is None or l_value != anchor.l_achieved
                                          or l_value < anchor.l_required):
        raise fail(f"l measured on the data is {l_value}, not the anchored {anchor.l_achieved}")
    expected_csv = ds.flat_csv(resources, anchor.quasi_identifiers, sensitive_type, sensitive_codes,
                               anchor.resource_types)
    if files.get(ds.CSV_NAME) != expected_csv:
        raise fail("the CSV is not the one the NDJSON records give")
    return {"release": anchor.id, "records": len(leaves), "subjects": n, "k": k, "l": l_value,
            "dataset_root": anchor.dataset_root}
