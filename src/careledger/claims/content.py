"""A claim's clinical and financial content: the typed model, its FHIR R4 import, bytes and commitment.

The content never reaches the ledger. The provider keeps it in its vault; the insurer receives it
through the gateway under the patient's consent for payment (``HPAYMT``); the ledger holds only the
salted commitment::

    canonical  = careledger.core.codec.encode(content.to_json())          (RFC 8785 profile)
    commitment = SHA-256(salt ‖ canonical)                                 (salt: 32 random bytes)

— :func:`careledger.vault.canonical.compute_commitment`, the records construction. The model keeps
only what adjudication reads (no names, no free text, no display strings), so two FHIR spellings of
one claim have one commitment, and nothing the kernel ignores can change its result.

Import (:func:`parse_claim`) takes a FHIR R4 ``Claim`` (or the claim half of an
``ExplanationOfBenefit``), validated with the fhir.resources R4B models, and maps it:

* claim type from ``type`` (claim-type code system); ``use`` must be ``claim``;
* per ``item``: ``sequence``, the first ``productOrService`` coding with a system and a code,
  up to four ``modifier`` codes, ``quantity`` (a whole number of units, default 1), the charge
  (``net``, else ``unitPrice`` x quantity x factor) in integer minor units — a line with no price
  has ``charge = None`` and is denied by adjudication (CO-16 / M79), never priced at a guess —,
  ``diagnosisSequence`` (must name declared diagnoses), place of service (``locationCodeableConcept``),
  revenue code, the ``encounter`` references, and the service date (``servicedDate``,
  ``servicedPeriod``, else the claim's ``billablePeriod``);
* service dates are calendar dates as written (the date part of a dateTime, in its own offset),
  held as integer days since 1970-01-01.

Problems become :class:`ClaimContentInvalid` (CLAIM_CONTENT_INVALID) or the vault's
:class:`~careledger.vault.fhir.FhirInvalid` (FHIR_INVALID, schema errors), each with an
OperationOutcome whose issues name the element and the rule, never the value.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final, Literal

from careledger.core import codec
from careledger.core.errors import Code, LedgerError
from careledger.vault.canonical import DECIMAL_TAG, compute_commitment, from_python
from careledger.vault.fhir import FhirInvalid, operation_outcome, validate_resource

SCHEMA: Final = "careledger/claim-content/v1"
CLAIM_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/claim-type"
CLAIM_TYPES: Final = ("institutional", "oral", "pharmacy", "professional", "vision")
ClaimType = Literal["institutional", "oral", "pharmacy", "professional", "vision"]
REFERENCE_SYSTEM: Final = "urn:careledger:reference"  # a diagnosis given as a Reference(Condition)
MAX_MODIFIERS: Final = 4
MAX_LINES: Final = 999
# ISO 4217 minor-unit exponents of the currencies CareLedger accepts.
CURRENCY_EXPONENT: Final[dict[str, int]] = {
    "AUD": 2, "CAD": 2, "CHF": 2, "CNY": 2, "EUR": 2, "GBP": 2, "HKD": 2, "INR": 2, "JPY": 0, "KRW": 0,
    "SGD": 2, "USD": 2,
}
_EPOCH: Final = datetime.date(1970, 1, 1).toordinal()


class ClaimContentInvalid(FhirInvalid):
    """A valid FHIR resource that is not an adjudicable claim (or a malformed content document)."""

    default_code = Code.CLAIM_CONTENT_INVALID


class ContentMismatch(LedgerError):
    """The content does not open the commitment the ledger holds."""

    default_code = Code.CLAIM_CONTENT_MISMATCH


# --- dates and money ----------------------------------------------------------------------------------------

def day_of(text: str) -> int:
    """Days since 1970-01-01 of a FHIR date or dateTime's calendar date (``YYYY-MM-DD…``).

    Raises ValueError for a partial date (``YYYY`` or ``YYYY-MM``) or an impossible one."""
    if len(text) < 10 or (len(text) > 10 and text[10] != "T"):
        raise ValueError("not a full date")
    return datetime.date.fromisoformat(text[:10]).toordinal() - _EPOCH


@lru_cache(maxsize=8192)
def year_of(day: int) -> int:
    """The calendar year of a day number (the benefit year of a service on that day)."""
    return datetime.date.fromordinal(day + _EPOCH).year


def date_of(day: int) -> str:
    """The ISO calendar date of a day number (inverse of :func:`day_of`)."""
    return datetime.date.fromordinal(day + _EPOCH).isoformat()


def decimal_of(value: Any) -> Decimal | None:
    """A FHIR decimal in exact form (integer or tagged decimal text) as a Decimal; None otherwise."""
    if type(value) is int:
        return Decimal(value)
    if type(value) is dict and len(value) == 1 and type(value.get(DECIMAL_TAG)) is str:
        try:
            return Decimal(value[DECIMAL_TAG])
        except InvalidOperation:
            return None
    return None


def to_minor(amount: Decimal, currency: str) -> int | None:
    """``amount`` in integer minor units of ``currency``; None unless it is exact (no rounding ever)."""
    scaled = amount.scaleb(CURRENCY_EXPONENT[currency])
    if scaled != scaled.to_integral_value():
        return None
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    """Minor units back to a decimal amount with the currency's exponent (``1234`` USD → ``12.34``)."""
    exponent = CURRENCY_EXPONENT[currency]
    return Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


# --- the model -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Diagnosis:
    sequence: int
    system: str
    code: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "sequence": self.sequence, "system": self.system}


@dataclass(frozen=True, slots=True)
class ClaimLine:
    """One service line. ``charge`` is in minor units (None: the line carries no price)."""

    sequence: int
    service_day: int
    service_end_day: int
    system: str
    code: str
    modifiers: tuple[str, ...]
    units: int
    charge: int | None
    diagnosis_pointers: tuple[int, ...] = ()
    place_of_service: str | None = None
    revenue: str | None = None
    encounters: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"charge": self.charge, "code": self.code, "diagnosis_pointers": list(self.diagnosis_pointers),
                "encounters": list(self.encounters), "modifiers": list(self.modifiers),
                "place_of_service": self.place_of_service, "revenue": self.revenue, "sequence": self.sequence,
                "service_day": self.service_day, "service_end_day": self.service_end_day, "system": self.system,
                "units": self.units}


@dataclass(frozen=True, slots=True)
class ClaimContent:
    """What adjudication reads of a claim: type, dates, diagnoses and lines in sequence order."""

    claim_type: ClaimType
    currency: str
    billable_start_day: int
    billable_end_day: int
    created_day: int
    diagnoses: tuple[Diagnosis, ...]
    lines: tuple[ClaimLine, ...]
    declared_total: int | None = None
    preauth_refs: tuple[str, ...] = ()

    @property
    def submitted(self) -> int:
        """The claim's submitted charge: the sum of its priced lines (835 CLP03)."""
        return sum(line.charge or 0 for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        return {"billable": [self.billable_start_day, self.billable_end_day], "created_day": self.created_day,
                "currency": self.currency, "declared_total": self.declared_total,
                "diagnoses": [d.to_json() for d in self.diagnoses], "lines": [line.to_json() for line in self.lines],
                "preauth_refs": list(self.preauth_refs), "schema": SCHEMA, "type": self.claim_type}

    def canonical(self) -> bytes:
        """The canonical bytes the commitment covers."""
        return codec.encode(self.to_json())

    def commitment(self, salt: bytes) -> str:
        """``SHA-256(salt ‖ canonical)``, hex (raises ValueError unless the salt is 32 bytes)."""
        return compute_commitment(salt, self.canonical())

    @classmethod
    def from_json(cls, doc: Any) -> ClaimContent:
        """The content from its JSON form. Raises ClaimContentInvalid for any other shape."""
        try:
            return _content_from_json(doc)
        except (KeyError, TypeError, ValueError, AssertionError):
            raise ClaimContentInvalid("not a CareLedger claim content document", operation_outcome(
                [("structure", f"expected a {SCHEMA} document", "")])) from None

    @classmethod
    def from_canonical(cls, data: bytes) -> ClaimContent:
        """Content from canonical bytes; they must re-encode identically (else ClaimContentInvalid)."""
        try:
            doc = codec.decode(data)
        except LedgerError:
            raise ClaimContentInvalid("claim content bytes are not canonical JSON", operation_outcome(
                [("structure", "content bytes must be canonical JSON", "")])) from None
        content = cls.from_json(doc)
        if content.canonical() != data:
            raise ClaimContentInvalid("claim content bytes are not in canonical form", operation_outcome(
                [("structure", "content bytes must be the canonical encoding of the document", "")]))
        return content


def _int(value: Any) -> int:
    assert type(value) is int
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _str(value: Any) -> str:
    assert type(value) is str
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _content_from_json(doc: Any) -> ClaimContent:
    assert type(doc) is dict and doc["schema"] == SCHEMA
    assert set(doc) == {"billable", "created_day", "currency", "declared_total", "diagnoses", "lines",
                        "preauth_refs", "schema", "type"}
    assert doc["type"] in CLAIM_TYPES and doc["currency"] in CURRENCY_EXPONENT
    lines = []
    for d in doc["lines"]:
        assert type(d) is dict and len(d) == 12
        lines.append(ClaimLine(
            sequence=_int(d["sequence"]), service_day=_int(d["service_day"]),
            service_end_day=_int(d["service_end_day"]), system=_str(d["system"]), code=_str(d["code"]),
            modifiers=tuple(_str(m) for m in d["modifiers"]), units=_int(d["units"]), charge=_opt_int(d["charge"]),
            diagnosis_pointers=tuple(_int(p) for p in d["diagnosis_pointers"]),
            place_of_service=_opt_str(d["place_of_service"]), revenue=_opt_str(d["revenue"]),
            encounters=tuple(_str(e) for e in d["encounters"])))
    diagnoses = tuple(Diagnosis(_int(d["sequence"]), _str(d["system"]), _str(d["code"])) for d in doc["diagnoses"])
    start, end = doc["billable"]
    return ClaimContent(claim_type=doc["type"], currency=doc["currency"], billable_start_day=_int(start),
                        billable_end_day=_int(end), created_day=_int(doc["created_day"]), diagnoses=diagnoses,
                        lines=tuple(lines), declared_total=_opt_int(doc["declared_total"]),
                        preauth_refs=tuple(_str(r) for r in doc["preauth_refs"]))


def verify_content(content: ClaimContent, salt: bytes, commitment: str) -> None:
    """Raise :class:`ContentMismatch` (CLAIM_CONTENT_MISMATCH) unless the content opens ``commitment``."""
    if len(salt) != 32 or content.commitment(salt) != commitment:
        raise ContentMismatch("the claim content does not match the commitment on the ledger")


# --- FHIR import ---------------------------------------------------------------------------------------------

class _Issues:
    def __init__(self, rtype: str) -> None:
        self.rtype = rtype
        self.items: list[tuple[str, str, str]] = []

    def add(self, code: str, diagnostics: str, path: str) -> None:
        self.items.append((code, diagnostics, f"{self.rtype}.{path}" if path else self.rtype))


def _first_coding(concept: Any) -> tuple[str, str] | None:
    if type(concept) is not dict:
        return None
    for coding in concept.get("coding", ()):
        if type(coding) is dict and type(coding.get("system")) is str and type(coding.get("code")) is str:
            return coding["system"], coding["code"]
    return None


def _first_code(concept: Any) -> str | None:
    """The code of the first coding that has one (modifiers are often sent without a system)."""
    if type(concept) is not dict:
        return None
    return next((c["code"] for c in concept.get("coding", ()) if type(c) is dict and type(c.get("code")) is str),
                None)


def _money(value: Any, issues: _Issues, path: str, currencies: set[str]) -> Decimal | None:
    """The amount of a FHIR Money (exact), noting its currency in ``currencies``; None when absent."""
    if type(value) is not dict or "value" not in value:
        return None
    amount = decimal_of(value["value"])
    if amount is None:
        issues.add("invalid", "an amount must be a decimal number", f"{path}.value")
        return None
    if type(value.get("currency")) is str:
        currencies.add(value["currency"])
    return amount


def _period_days(period: Any, issues: _Issues, path: str) -> tuple[int, int] | None:
    if type(period) is not dict or type(period.get("start")) is not str:
        return None
    try:
        start = day_of(period["start"])
        end = day_of(period["end"]) if type(period.get("end")) is str else start
    except ValueError:
        issues.add("invalid", "a service period needs full dates", path)
        return None
    if end < start:
        issues.add("invariant", "the period ends before it starts", path)
        return None
    return start, end


def _units(item: dict[str, Any], issues: _Issues, path: str) -> tuple[int, Decimal]:
    quantity = item.get("quantity")
    if type(quantity) is not dict or "value" not in quantity:
        return 1, Decimal(1)
    value = decimal_of(quantity["value"])
    if value is None or value <= 0 or value != value.to_integral_value() or value > 999_999:
        issues.add("invalid", "quantity must be a whole number of units from 1 to 999999", f"{path}.quantity")
        return 1, Decimal(1)
    return int(value), value


def parse_claim(resource: Any) -> ClaimContent:
    """Map a FHIR R4 ``Claim`` (or ``ExplanationOfBenefit``) to :class:`ClaimContent`.

    ``resource`` is JSON as parsed (floats allowed) or in exact form. Raises FhirInvalid
    (FHIR_INVALID) when the R4B model refuses it, ClaimContentInvalid (CLAIM_CONTENT_INVALID) when it
    is valid FHIR but not an adjudicable claim: another resource type, a ``use`` other than ``claim``,
    an unknown claim type, no lines or more than 999, a line without a coded product or service, a
    date that is partial, more than four modifiers, a fractional or non-positive quantity, an amount
    finer than the currency's minor unit, an unknown or mixed currency, a diagnosis pointer to no
    diagnosis, or repeated line sequences.
    """
    value = from_python(resource)
    rtype = validate_resource(value)
    issues = _Issues(rtype)
    if rtype not in ("Claim", "ExplanationOfBenefit"):
        raise ClaimContentInvalid(f"a {rtype} is not a claim", operation_outcome(
            [("not-supported", "expected a Claim or an ExplanationOfBenefit", rtype)]))
    if value.get("use") != "claim":
        issues.add("not-supported", "only use = claim is adjudicated", "use")
    type_coding = next((c for c in value["type"].get("coding", ()) if c.get("system") == CLAIM_TYPE_SYSTEM), None)
    claim_type = type_coding.get("code") if type_coding else None
    if claim_type not in CLAIM_TYPES:
        issues.add("code-invalid", "type must carry a claim-type code", "type")
    currencies: set[str] = set()
    billable = _period_days(value.get("billablePeriod"), issues, "billablePeriod")
    try:
        created = day_of(value["created"])
    except ValueError:
        issues.add("invalid", "created must be a full date", "created")
        created = 0
    diagnoses = []
    for i, d in enumerate(value.get("diagnosis", ())):
        coded = _first_coding(d.get("diagnosisCodeableConcept"))
        ref = (d.get("diagnosisReference") or {}).get("reference")
        if coded is not None:
            diagnoses.append(Diagnosis(d["sequence"], coded[0], coded[1]))
        elif type(ref) is str:
            diagnoses.append(Diagnosis(d["sequence"], REFERENCE_SYSTEM, ref))
        else:
            issues.add("required", "a diagnosis needs a coded concept or a reference", f"diagnosis[{i}]")
    declared = {d.sequence for d in diagnoses}
    items = value.get("item", ())
    if not items or len(items) > MAX_LINES:
        issues.add("required", f"a claim has 1 to {MAX_LINES} lines", "item")
    raw_lines: list[tuple[ClaimLine, Decimal | None, int]] = []
    for i, item in enumerate(items):
        path = f"item[{i}]"
        coded = _first_coding(item.get("productOrService"))
        if coded is None:
            issues.add("required", "productOrService needs a coding with a system and a code",
                       f"{path}.productOrService")
            continue
        modifiers = [c for c in (_first_code(m) for m in item.get("modifier", ())) if c is not None]
        if len(modifiers) > MAX_MODIFIERS:
            issues.add("invalid", f"at most {MAX_MODIFIERS} modifiers per line", f"{path}.modifier")
        units, quantity = _units(item, issues, path)
        served = None
        if type(item.get("servicedDate")) is str:
            try:
                served = (day_of(item["servicedDate"]),) * 2
            except ValueError:
                issues.add("invalid", "servicedDate must be a full date", f"{path}.servicedDate")
        elif "servicedPeriod" in item:
            served = _period_days(item["servicedPeriod"], issues, f"{path}.servicedPeriod")
        else:
            served = billable
        if served is None:
            issues.add("required", "a line needs a service date (serviced[x] or the claim's billablePeriod)", path)
            continue
        charge_amount: Decimal | None = None
        net = _money(item.get("net"), issues, f"{path}.net", currencies)
        unit_price = _money(item.get("unitPrice"), issues, f"{path}.unitPrice", currencies)
        if net is not None:
            charge_amount = net
        elif unit_price is not None:
            factor = decimal_of(item.get("factor", 1)) or Decimal(1)
            charge_amount = unit_price * quantity * factor
        pointers = tuple(item.get("diagnosisSequence", ()))
        if any(p not in declared for p in pointers):
            issues.add("invalid", "diagnosisSequence names no diagnosis of the claim", f"{path}.diagnosisSequence")
        location = _first_coding(item.get("locationCodeableConcept"))
        revenue = _first_coding(item.get("revenue"))
        encounters = tuple(e["reference"] for e in item.get("encounter", ()) if type(e.get("reference")) is str)
        raw_lines.append((ClaimLine(
            sequence=item["sequence"], service_day=served[0], service_end_day=served[1], system=coded[0],
            code=coded[1], modifiers=tuple(modifiers), units=units, charge=None, diagnosis_pointers=pointers,
            place_of_service=location[1] if location else None, revenue=revenue[1] if revenue else None,
            encounters=encounters), charge_amount, i))
    total = value.get("total")
    if rtype == "ExplanationOfBenefit":
        total = next((t.get("amount") for t in total or () if _first_coding(t.get("category")) is not None
                      and _first_coding(t.get("category"))[1] == "submitted"), None)  # type: ignore[index]
    declared_total = _money(total, issues, "total", currencies)
    if len(currencies) > 1:
        issues.add("invalid", "all amounts must be in one currency", "")
    currency_code = next(iter(currencies)) if len(currencies) == 1 else "USD" if not currencies else ""
    if currency_code not in CURRENCY_EXPONENT:
        issues.add("code-invalid", "unsupported currency", "")
        currency_code = "USD"
    lines = []
    for line, amount, index in raw_lines:
        charge = None
        if amount is not None:
            charge = to_minor(amount, currency_code)
            if charge is None or charge < 0:
                issues.add("invalid", "a line charge must be a non-negative amount in whole minor units",
                           f"item[{index}]")
        lines.append(ClaimLine(line.sequence, line.service_day, line.service_end_day, line.system, line.code,
                               line.modifiers, line.units, charge, line.diagnosis_pointers, line.place_of_service,
                               line.revenue, line.encounters))
    sequences = [line.sequence for line in lines]
    if len(set(sequences)) != len(sequences):
        issues.add("invalid", "line sequences repeat", "item")
    total_minor = None
    if declared_total is not None:
        total_minor = to_minor(declared_total, currency_code)
        if total_minor is None:
            issues.add("invalid", "total must be in whole minor units", "total")
    if billable is None and lines:
        billable = (min(x.service_day for x in lines), max(x.service_end_day for x in lines))
    preauth = tuple(sorted({r for ins in value.get("insurance", ()) for r in ins.get("preAuthRef", ())
                            if type(r) is str}))
    if issues.items:
        raise ClaimContentInvalid(f"the {rtype} is not an adjudicable claim: {len(issues.items)} problem(s)",
                                  operation_outcome(issues.items))
    assert billable is not None and claim_type in CLAIM_TYPES
    return ClaimContent(claim_type=claim_type, currency=currency_code, billable_start_day=billable[0],
                        billable_end_day=billable[1], created_day=created, diagnoses=tuple(diagnoses),
                        lines=tuple(sorted(lines, key=lambda x: x.sequence)), declared_total=total_minor,
                        preauth_refs=preauth)
