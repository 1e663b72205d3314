"""FHIR R4 at the vault's edge: validation (fhir.resources R4B models), bundles, and FHIR exports.

Validation errors become :class:`FhirInvalid` (code FHIR_INVALID) carrying an OperationOutcome whose
issues name the element path and the rule broken, never the offending value (it may be PHI).
Consents export as FHIR ``Consent`` and access-log entries as FHIR ``AuditEvent`` resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from careledger.core.errors import Code, LedgerError
from careledger.vault.canonical import canonical_bytes, json_of_canonical

MAX_ISSUES = 20
BUNDLE_TYPES_WITH_CONTENT = ("transaction", "batch", "collection", "document", "message", "searchset")
_ISSUE_CODES = {"missing": "required", "extra_forbidden": "structure", "enum": "code-invalid",
                "literal_error": "code-invalid"}


class FhirInvalid(LedgerError):
    """An invalid FHIR resource: ``outcome`` is the OperationOutcome explaining why."""

    default_code = Code.FHIR_INVALID

    def __init__(self, message: str, outcome: dict[str, Any], code: Code | None = None) -> None:
        super().__init__(message, code)
        self.outcome = outcome


def operation_outcome(issues: list[tuple[str, str, str]]) -> dict[str, Any]:
    """An OperationOutcome from ``(issue code, diagnostics, expression)`` triples."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diag,
                       **({"expression": [expr]} if expr else {})} for code, diag, expr in issues[:MAX_ISSUES]]}


@lru_cache(maxsize=256)
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


def validate_resource(value: Any, where: str = "", canonical: bytes | None = None) -> str:
    """Validate one resource (exact form, see :mod:`.canonical`) against its R4B model; returns its type.

    ``canonical`` is the resource's canonical bytes when the caller has them (they are validated as
    FHIR JSON with the decimals untagged, so the bytes checked are the bytes committed to).
    Raises :class:`FhirInvalid` (FHIR_INVALID) with an OperationOutcome.
    """
    prefix = f"{where}." if where else ""
    if type(value) is not dict or type(value.get("resourceType")) is not str:
        raise FhirInvalid("not a FHIR resource", operation_outcome(
            [("structure", "a FHIR resource is a JSON object with a resourceType", where or "")]))
    rtype = value["resourceType"]
    model = _model(rtype)
    if model is None or rtype in ("Bundle", "Parameters"):
        raise FhirInvalid(f"resource type {rtype!r} cannot be stored as a record", operation_outcome(
            [("not-supported", f"unknown or unsupported resourceType {rtype[:40]!r}", f"{prefix}resourceType")]))
    try:
        model.model_validate_json(json_of_canonical(canonical_bytes(value) if canonical is None else canonical))
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
            issues.append((_ISSUE_CODES.get(str(err.get("type")), "invalid"), str(err.get("msg", "invalid")),
                           f"{prefix}{rtype}{'.' + path if path else ''}"))
        raise FhirInvalid(f"invalid {rtype}: {len(issues)} problem(s)", operation_outcome(issues)) from None
    except ValueError as exc:
        raise FhirInvalid(f"invalid {rtype}", operation_outcome([("invalid", type(exc).__name__, rtype)])) from None
    return str(rtype)


@dataclass(frozen=True)
class Entry:
    """One resource to store: the exact value, its type, where it came from (bundle fullUrl), and its
    canonical bytes (what the commitment covers)."""

    resource: Any
    type: str
    full_url: str | None
    canonical: bytes


def split_resources(value: Any) -> list[Entry]:
    """A single resource, or every entry's resource of a Bundle, each validated. All-or-nothing.

    Raises FhirInvalid (FHIR_INVALID) for any invalid entry, or FHIR_UNSUPPORTED for a bundle
    entry without a resource (e.g. a DELETE request) or of a bundle type that carries no content.
    """
    if type(value) is dict and value.get("resourceType") == "Bundle":
        btype = value.get("type")
        entries = value.get("entry")
        if btype not in BUNDLE_TYPES_WITH_CONTENT or type(entries) is not list or not entries:
            raise FhirInvalid("the bundle carries no resources to store", operation_outcome(
                [("not-supported", f"bundle type {str(btype)[:20]!r} with entries is required", "Bundle.type")]),
                Code.FHIR_UNSUPPORTED)
        out: list[Entry] = []
        problems: list[dict[str, Any]] = []
        for i, entry in enumerate(entries):
            where = f"Bundle.entry[{i}].resource"
            if type(entry) is not dict or "resource" not in entry:
                raise FhirInvalid(f"bundle entry {i} has no resource", operation_outcome(
                    [("not-supported", "every entry must carry a resource", f"Bundle.entry[{i}]")]),
                    Code.FHIR_UNSUPPORTED)
            try:
                canonical = _canonical(entry["resource"], where)
                rtype = validate_resource(entry["resource"], where, canonical)
            except FhirInvalid as exc:
                problems.extend(exc.outcome["issue"])
                continue
            full_url = entry.get("fullUrl")
            out.append(Entry(entry["resource"], rtype, full_url if isinstance(full_url, str) else None, canonical))
        if problems:
            outcome = {"resourceType": "OperationOutcome", "issue": problems[:MAX_ISSUES]}
            raise FhirInvalid(f"{len(problems)} problem(s) in the bundle; nothing was stored", outcome)
        return out
    canonical = _canonical(value, "")
    return [Entry(value, validate_resource(value, "", canonical), None, canonical)]


def _canonical(value: Any, where: str) -> bytes:
    """Canonical bytes of one resource; a value outside the canonical profile is invalid FHIR."""
    if type(value) is not dict:
        return b"null"  # validate_resource refuses it as "not a FHIR resource"
    try:
        return canonical_bytes(value)
    except LedgerError as exc:
        raise FhirInvalid("resource has no canonical encoding", operation_outcome(
            [("structure", f"no canonical encoding: {exc.message[:80]}", where or "")])) from None


# --- exports -----------------------------------------------------------------------------------------------

def _instant(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _period(p: dict[str, Any] | None) -> dict[str, Any] | None:
    if p is None:
        return None
    out = {k: v for k, v in (("start", _instant(p.get("start_ms"))), ("end", _instant(p.get("end_ms")))) if v}
    return out or None


def _actor_reference(grantee: dict[str, Any]) -> dict[str, Any]:
    kind, gid = grantee["kind"], grantee["id"]
    if kind == "org":
        return {"reference": f"Organization/{gid}"}
    if kind == "study":
        return {"reference": f"ResearchStudy/{gid}"}
    return {"identifier": {"system": "urn:careledger:member-key", "value": gid}}


def consent_to_fhir(c: dict[str, Any]) -> dict[str, Any]:
    """A consent record (``consent/patient/...``) as a FHIR R4 Consent resource."""
    research = c["purposes"] == ["HRESCH"] or c["grantee"]["kind"] == "study"
    provision: dict[str, Any] = {
        "type": c["provision"],
        "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": "IRCP"}]}, "reference": _actor_reference(c["grantee"])}],
        "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": p} for p in c["purposes"]],
    }
    if c["resource_types"]:
        provision["class"] = [{"system": "http://hl7.org/fhir/resource-types", "code": t} for t in c["resource_types"]]
    if c["records"]:
        provision["data"] = [{"meaning": "instance", "reference": {"reference": f"urn:careledger:record:{r}"}}
                             for r in c["records"]]
    if _period(c["period"]):
        provision["period"] = _period(c["period"])
    if _period(c["data_period"]):
        provision["dataPeriod"] = _period(c["data_period"])
    return {
        "resourceType": "Consent", "id": c["id"],
        "status": "active" if c["status"] == "active" else "inactive",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "research" if research else "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": "urn:careledger:pseudonym", "value": c["patient"]}},
        "dateTime": _instant(c["granted_ms"]),
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                   "code": "OPTIN" if c["provision"] == "permit" else "OPTOUT"}]},
        "provision": provision,
    }


_OUTCOME = {"granted": "0", "denied": "4"}


def audit_to_fhir(pseudonym: str, key: str, e: dict[str, Any]) -> dict[str, Any]:
    """An access-log entry (``audit/patient/...``) as a FHIR R4 AuditEvent resource."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": key.rsplit("/", 1)[-1],
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}],
        "action": "R", "recorded": _instant(e["time_ms"]), "outcome": _OUTCOME[e["outcome"]],
        "purposeOfEvent": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                        "code": "ETREAT" if e["emergency"] else e["purpose"]}]}],
        "agent": [{"requestor": True, "who": {"identifier": {"system": "urn:careledger:member-key",
                                                              "value": e["requester"]}},
                   **({"type": {"text": f"organisation {e['requester_org']}"}} if e.get("requester_org") else {})}],
        "source": {"observer": {"reference": f"Organization/{e['custodian']}"}},
        "entity": [{"what": {"identifier": {"system": "urn:careledger:pseudonym", "value": pseudonym}},
                    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"}}],
    }
    if e.get("record"):
        event["entity"].append({"what": {"identifier": {"system": "urn:careledger:record", "value": e["record"]}},
                                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                         "code": "2"}})
    if e["outcome"] == "denied":
        event["outcomeDesc"] = f"denied with code {e['code']}"
    if e["emergency"]:
        event["outcomeDesc"] = (event.get("outcomeDesc", "") + " emergency (break-glass) access").strip()
    return event
