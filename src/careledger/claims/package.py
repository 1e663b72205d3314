"""The documents behind a claim's commitments: where each is kept, under which record id, in which form.

Every document a claims transaction commits to is a record of the patient in a custodian's vault,
anchored on the ledger with ``records.anchor`` like any other record, and read through that
custodian's gateway under the patient's consent (each read audited in the patient's access log):

===========================  ===================  ===========================================================
document                     vault                record id
===========================  ===================  ===========================================================
FHIR ``Claim``               the provider's       :func:`claim_record_id` (the claim's content commitment)
FHIR ``Coverage``            the insurer's        :func:`coverage_record_id` (the coverage's commitment)
adjudication package         the insurer's        :func:`adjudication_record_id` (result commitment, "package")
FHIR ``ClaimResponse``       the insurer's        :func:`adjudication_record_id` (result commitment, "response")
FHIR ``ExplanationOfBenefit`` the insurer's       :func:`adjudication_record_id` (result commitment, "eob")
===========================  ===================  ===========================================================

A record id is derived from the commitment the ledger holds, so any party that sees the claim on the
ledger knows which record to ask for, and nobody can anchor a record under that id first: the
document is anchored before the transaction that makes its commitment public.

The content commitment is ``SHA-256(S ‖ canonical claim content)`` and the Claim record's anchor is
``SHA-256(S ‖ canonical FHIR Claim)``: one salt ``S``, kept with the record, opens both, and erasing
the record destroys it. The *adjudication package* (a FHIR ``Binary``, ``application/json``) holds
everything :func:`careledger.claims.adjudication.adjudicate` read — the claim content, the coverage
terms, the facts, the plan and edit-table references — its result, and the salt of the input and
result commitments: the patient, the provider (under the patient's consent) or an auditor given it
re-runs the adjudication with :func:`rerun` and gets the ledger's commitments, or the differences.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from careledger.core import codec
from careledger.core.errors import Code, LedgerError
from careledger.vault.canonical import SALT_BYTES, compute_commitment, from_python, parse_exact
from careledger.vault.store import NONCE_BYTES, Sealed, Vault, aad_of

from .adjudication import (
    Accumulators,
    AdjudicationInputInvalid,
    AdjudicationResult,
    EncounterFacts,
    LedgerFacts,
    PriorLine,
    PriorPayer,
    Verification,
    verify_adjudication,
)
from .content import CURRENCY_EXPONENT, ClaimContent, decimal_of, to_minor
from .coverage import CoverageTerms, PlanRules
from .edits import EditTables
from .fingerprint import claim_fingerprints

PACKAGE_SCHEMA: Final = "careledger/adjudication-package/v1"
PACKAGE_MEDIA_TYPE: Final = "application/json"
RecordKind = Literal["package", "response", "eob"]
RECORD_TYPES: Final[dict[str, str]] = {"package": "Binary", "response": "ClaimResponse",
                                       "eob": "ExplanationOfBenefit"}


# --- record ids ---------------------------------------------------------------------------------------------

def _derived(domain: bytes, text: str) -> str:
    return "r-" + hashlib.sha256(domain + text.encode()).hexdigest()[:32]


def claim_record_id(content_commitment: str) -> str:
    """The provider's record holding the FHIR Claim whose content commitment is ``content_commitment``."""
    return _derived(b"CareLedger/claim-record/v1\x00", content_commitment)


def coverage_record_id(commitment: str) -> str:
    """The insurer's record holding the FHIR Coverage whose commitment is ``commitment``."""
    return _derived(b"CareLedger/coverage-record/v1\x00", commitment)


def adjudication_record_id(result_commitment: str, kind: RecordKind) -> str:
    """The insurer's record of an adjudication's package, ClaimResponse or ExplanationOfBenefit."""
    return _derived(b"CareLedger/adjudication-record/v1\x00", f"{result_commitment}/{kind}")


def adjudication_records(result_commitment: str) -> dict[str, str]:
    """``{"package", "response", "eob"}`` → record id, for one adjudication record."""
    return {kind: adjudication_record_id(result_commitment, kind) for kind in ("package", "response", "eob")}


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def seal_with_salt(vault: Vault, record: str, version: int, pseudonym: str, rtype: str, canonical: bytes,
                   salt: bytes) -> Sealed:
    """:meth:`careledger.vault.store.Vault.seal` with a salt chosen by the caller (the content commitment
    must be computed before the record id it is stored under is known): a fresh data key and nonce,
    the same layout and associated data."""
    if len(salt) != SALT_BYTES:
        raise ValueError("a salt is 32 bytes")
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, salt + canonical, aad_of(vault.org, record, version))
    return Sealed(record, version, pseudonym, rtype, compute_commitment(salt, canonical),
                  aes_key_wrap(vault.org_key.key, data_key), nonce, ciphertext)


# --- facts from their JSON form -------------------------------------------------------------------------------

def facts_from_json(doc: Any) -> LedgerFacts:
    """The inverse of :meth:`LedgerFacts.to_json`. Raises AdjudicationInputInvalid for another shape."""
    try:
        enc = doc["encounter"]
        encounter = EncounterFacts(str(enc["record"]), enc["status"], enc["resource_id"], enc["start_day"],
                                   enc["end_day"])
        prior = doc["prior_payer"]
        facts = LedgerFacts(
            claim=str(doc["claim"]), provider=str(doc["provider"]), received_day=int(doc["received_day"]),
            encounter=encounter, accumulators=Accumulators.from_json(doc["accumulators"]),
            prior_lines=tuple(PriorLine(str(p["claim"]), int(p["service_day"]), str(p["system"]), str(p["code"]),
                                        tuple(str(m) for m in p["modifiers"]), int(p["units"]))
                              for p in doc["prior_lines"]),
            prior_payer=None if prior is None else PriorPayer(
                str(prior["claim"]), str(prior["insurer"]), tuple((int(s), int(a)) for s, a in prior["paid"])),
            mue_overrides=tuple(str(c) for c in doc["mue_overrides"]))
    except (KeyError, TypeError, ValueError):
        raise AdjudicationInputInvalid("not a facts document") from None
    if facts.to_json() != doc:
        raise AdjudicationInputInvalid("the facts document is not in its canonical form")
    return facts


# --- the adjudication package ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetainedEncounter:
    """The insurer's copy of the encounter it read (its payment record): with its salt, the claim's line
    fingerprints stay checkable after the provider's copy is erased."""

    record: str
    version: int
    salt: bytes
    canonical: bytes

    def to_json(self) -> dict[str, Any]:
        return {"canonical": self.canonical.decode("utf-8"), "record": self.record, "salt": self.salt.hex(),
                "version": self.version}

    @classmethod
    def from_json(cls, doc: Any) -> RetainedEncounter:
        salt = bytes.fromhex(doc["salt"])
        if len(salt) != SALT_BYTES or set(doc) != {"canonical", "record", "salt", "version"}:
            raise ValueError("not a retained encounter")
        return cls(str(doc["record"]), int(doc["version"]), salt, str(doc["canonical"]).encode("utf-8"))


@dataclass(frozen=True)
class AdjudicationPackage:
    """What an insurer adjudicated, with what, and its result: enough for anyone to re-run it; and the
    encounter it read, so its fingerprints stay checkable (:meth:`fingerprints`)."""

    claim: str
    salt: bytes
    input: dict[str, Any]
    result: AdjudicationResult
    encounter: RetainedEncounter

    def content(self) -> ClaimContent:
        return ClaimContent.from_json(self.input["content"])

    def coverage(self) -> CoverageTerms:
        return CoverageTerms.from_json(self.input["coverage"])

    def facts(self) -> LedgerFacts:
        return facts_from_json(self.input["facts"])

    def fingerprints(self, pseudonym: str, provider: str) -> list[str]:
        """The claim's line fingerprints recomputed from the content and the retained encounter's salt."""
        return claim_fingerprints(self.encounter.salt, pseudonym, provider, self.content())

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.claim, "encounter": self.encounter.to_json(), "input": self.input,
                "result": self.result.to_json(), "salt": self.salt.hex(), "schema": PACKAGE_SCHEMA}

    def canonical(self) -> bytes:
        return codec.encode(self.to_json())

    def binary(self) -> dict[str, Any]:
        """The package as the FHIR ``Binary`` the insurer's vault stores."""
        return {"contentType": PACKAGE_MEDIA_TYPE, "data": base64.b64encode(self.canonical()).decode("ascii"),
                "resourceType": "Binary"}

    @classmethod
    def from_json(cls, doc: Any) -> AdjudicationPackage:
        """Raises AdjudicationInputInvalid for another shape."""
        try:
            assert type(doc) is dict and doc["schema"] == PACKAGE_SCHEMA
            assert set(doc) == {"claim", "encounter", "input", "result", "salt", "schema"}
            salt = bytes.fromhex(doc["salt"])
            assert len(salt) == SALT_BYTES and type(doc["input"]) is dict
            package = cls(str(doc["claim"]), salt, doc["input"], AdjudicationResult.from_json(doc["result"]),
                          RetainedEncounter.from_json(doc["encounter"]))
            package.content()
            package.coverage()
            package.facts()
        except (AssertionError, KeyError, TypeError, ValueError, LedgerError):
            raise AdjudicationInputInvalid("not an adjudication package") from None
        return package

    @classmethod
    def from_binary(cls, resource: Any) -> AdjudicationPackage:
        """The package inside a FHIR ``Binary`` (as stored). Raises AdjudicationInputInvalid."""
        value = from_python(resource)
        if type(value) is not dict or value.get("resourceType") != "Binary" \
                or value.get("contentType") != PACKAGE_MEDIA_TYPE or type(value.get("data")) is not str:
            raise AdjudicationInputInvalid("not an adjudication package (a Binary of application/json)")
        try:
            data = base64.b64decode(value["data"], validate=True)
            return cls.from_json(codec.decode(data))
        except (ValueError, LedgerError):
            raise AdjudicationInputInvalid("not an adjudication package") from None


@dataclass(frozen=True)
class Rerun:
    """A re-run of a recorded adjudication from its package (see :func:`rerun`)."""

    verification: Verification
    plan_matches: bool
    tables_match: bool

    @property
    def ok(self) -> bool:
        return self.verification.ok and self.plan_matches and self.tables_match

    def to_json(self) -> dict[str, Any]:
        v = self.verification
        return {"ok": self.ok, "input_matches": v.input_matches, "result_matches": v.result_matches,
                "plan_matches": self.plan_matches, "tables_match": self.tables_match,
                "differences": [{"path": d.path, "recorded": d.expected, "recomputed": d.actual}
                                for d in v.differences],
                "outcome": v.result.outcome, "totals": v.result.totals()}


def rerun(package: AdjudicationPackage, plan: PlanRules, tables: EditTables | None, record: dict[str, Any]) -> Rerun:
    """Re-run the adjudication of ``package`` with the plan version the ledger names (``plan``: read from
    the ledger) and the edit tables (the verifier's own copy of the version named), and compare with the
    ledger's adjudication ``record`` (its ``input_commitment``, ``result_commitment``, ``plan_digest``,
    ``edit_set``) and with the result the package says was sent. Never raises for a mismatch; raises
    AdjudicationInputInvalid when the inputs do not belong together."""
    edit_set = record.get("edit_set")
    tables_match = (edit_set is None and tables is None) or (
        edit_set is not None and tables is not None and tables.ref() == edit_set)
    verification = verify_adjudication(
        package.content(), package.coverage(), plan, tables, package.facts(), salt=package.salt,
        input_commitment_hex=str(record["input_commitment"]), result_commitment_hex=str(record["result_commitment"]),
        claimed=package.result)
    return Rerun(verification, plan.digest == record.get("plan_digest"), tables_match)


# --- what a prior payer paid, from its ClaimResponse ---------------------------------------------------------------

def prior_payer_from_response(resource: Any, claim: str, insurer: str, currency: str) -> PriorPayer:
    """The per-line benefit (``adjudication`` of category ``benefit``) of a prior payer's FHIR
    ``ClaimResponse`` as :class:`PriorPayer` facts. Raises AdjudicationInputInvalid for a response that
    is not complete or names another currency."""
    value = from_python(resource) if not isinstance(resource, bytes) else parse_exact(resource)
    if type(value) is not dict or value.get("resourceType") != "ClaimResponse" or value.get("outcome") != "complete":
        raise AdjudicationInputInvalid("the prior payer's ClaimResponse is not a complete one")
    paid = []
    for item in value.get("item", ()):
        amount = 0
        for adj in item.get("adjudication", ()):
            codes = {c.get("code") for c in (adj.get("category") or {}).get("coding", ())}
            money = adj.get("amount")
            if "benefit" in codes and type(money) is dict:
                if money.get("currency") != currency or currency not in CURRENCY_EXPONENT:
                    raise AdjudicationInputInvalid("the prior payer paid in another currency")
                exact = decimal_of(money.get("value"))
                value_minor = None if exact is None else to_minor(exact, currency)
                if value_minor is None or value_minor < 0:
                    raise AdjudicationInputInvalid("the prior payer's amount is not in whole minor units")
                amount = value_minor
        paid.append((int(item["itemSequence"]), amount))
    return PriorPayer(claim, insurer, tuple(sorted(paid)))


class PackageUnavailable(LedgerError):
    default_code = Code.RECORD_UNKNOWN
