"""What the insurer's node checks when a claim's content and its encounter arrive through the gateway.

Before adjudicating, the insurer's node holds: the claim record from the ledger, the claim content
and its salt (read from the provider's vault under the patient's consent for ``HPAYMT``), and the
encounter's FHIR resource and salt (read the same way). Each check below maps to the flag the node
records with ``claims.flag`` when it fails — and then it does not adjudicate:

* :func:`check_received_claim`: the content opens the ledger's commitment and agrees with what the
  ledger shows (type, service period, number of lines), else ``content-mismatch``; the ledger's
  line fingerprints are those of this content and this encounter, else ``fingerprint-mismatch``;
* :func:`encounter_facts`: the encounter opens its anchor's commitment, else ``encounter-mismatch``;
  it gives the :class:`~careledger.claims.adjudication.EncounterFacts` adjudication uses (its id and
  period, in days).

All pure; the gateway supplies the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from careledger.contracts.claims.layout import (
    FLAG_CONTENT_MISMATCH,
    FLAG_ENCOUNTER_MISMATCH,
    FLAG_FINGERPRINT_MISMATCH,
    ClaimRecord,
)
from careledger.core.errors import Code, LedgerError
from careledger.vault.canonical import canonical_bytes, compute_commitment, from_python

from .adjudication import EncounterFacts
from .content import ClaimContent, ContentMismatch, day_of, verify_content
from .fingerprint import FingerprintMismatch, check_fingerprints


class EncounterMismatch(LedgerError):
    """The encounter received does not open the commitment of its anchor."""

    default_code = Code.COMMITMENT_MISMATCH


FLAG_OF: dict[type[LedgerError], str] = {ContentMismatch: FLAG_CONTENT_MISMATCH,
                                          FingerprintMismatch: FLAG_FINGERPRINT_MISMATCH,
                                          EncounterMismatch: FLAG_ENCOUNTER_MISMATCH}


def flag_for(error: LedgerError) -> str | None:
    """The ``claims.flag`` kind an intake error calls for (None for other errors)."""
    return FLAG_OF.get(type(error))


@dataclass(frozen=True, slots=True)
class ReceivedClaim:
    content: ClaimContent
    salt: bytes


def check_received_claim(claim: ClaimRecord, received: ReceivedClaim, encounter_salt: bytes) -> None:
    """Raise ContentMismatch (CLAIM_CONTENT_MISMATCH) unless the content opens the claim's commitment
    and shows the ledger's type, service period and line count; FingerprintMismatch
    (FINGERPRINT_MISMATCH) unless the ledger's fingerprints are this content's under ``encounter_salt``."""
    c = received.content
    verify_content(c, received.salt, claim.content_commitment)
    if (c.claim_type, c.billable_start_day, c.billable_end_day, len(c.lines)) != \
            (claim.type, claim.start_day, claim.end_day, claim.lines):
        raise ContentMismatch("the claim content disagrees with the ledger's type, service period or line count")
    check_fingerprints(encounter_salt, claim.patient, claim.provider, c, list(claim.fingerprints))


def encounter_facts(record: str, resource: Any, salt: bytes, anchored_commitment: str) -> EncounterFacts:
    """The verified facts of an encounter read through the gateway. Raises EncounterMismatch
    (COMMITMENT_MISMATCH) unless ``resource`` and ``salt`` open the anchor's commitment."""
    value = from_python(resource)
    if len(salt) != 32 or compute_commitment(salt, canonical_bytes(value)) != anchored_commitment:
        raise EncounterMismatch("the encounter does not match its anchor on the ledger")
    period = value.get("period") or {}
    start = end = None
    try:
        start = day_of(period["start"]) if isinstance(period.get("start"), str) else None
        end = day_of(period["end"]) if isinstance(period.get("end"), str) else start
    except ValueError:
        start = end = None
    rid = value.get("id")
    return EncounterFacts(record, "verified", rid if isinstance(rid, str) else None, start, end)
