"""Line fingerprints: the same service line claimed twice is visible on the ledger, its code is not.

::

    fingerprint = HMAC-SHA256(key = the encounter record's salt,
                              "CareLedger/claim-line/v1" 0x00 ‖ canonical [pseudonym, provider, service day,
                                                                           code system, code])

The key is the 32-byte salt of the anchored Encounter the claim is for: secret, held in the
provider's vault and handed (with the encounter) to a payer that reads it under the patient's
consent. So every payer that receives the claim and the encounter recomputes the same fingerprints,
and nobody else can test guesses of codes or dates against them. The ledger compares fingerprints
across all claims, whatever the payer: a line billed to two insurers shows up as the same value.

Lines of one claim with the same (service day, code) share a fingerprint; the ledger carries the
claim's fingerprints as a sorted list without repeats, so their order says nothing about the lines.

Erasing the encounter (crypto-shredding its salt) makes the fingerprints uncomputable for anyone
who did not already receive the salt; those already on the ledger stay comparable with each other.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from careledger.core import codec
from careledger.core.errors import Code, LedgerError

from .content import ClaimContent

DOMAIN: Final = b"CareLedger/claim-line/v1\x00"


class FingerprintMismatch(LedgerError):
    default_code = Code.FINGERPRINT_MISMATCH


def line_fingerprint(encounter_salt: bytes, pseudonym: str, provider: str, service_day: int, system: str,
                     code: str) -> str:
    """The fingerprint of one service line (hex). Raises ValueError unless the salt is 32 bytes."""
    if len(encounter_salt) != 32:
        raise ValueError("an encounter salt is 32 bytes")
    message = DOMAIN + codec.encode([pseudonym, provider, service_day, system, code])
    return hmac.new(encounter_salt, message, hashlib.sha256).hexdigest()


def claim_fingerprints(encounter_salt: bytes, pseudonym: str, provider: str, content: ClaimContent) -> list[str]:
    """The claim's fingerprints as the ledger carries them: one per distinct line, sorted."""
    return sorted({line_fingerprint(encounter_salt, pseudonym, provider, line.service_day, line.system, line.code)
                   for line in content.lines})


def check_fingerprints(encounter_salt: bytes, pseudonym: str, provider: str, content: ClaimContent,
                       recorded: list[str]) -> None:
    """The payer's check: the fingerprints on the ledger are those of this content and encounter.

    Raises FingerprintMismatch (FINGERPRINT_MISMATCH) otherwise (flag the claim ``fingerprint-mismatch``).
    """
    if claim_fingerprints(encounter_salt, pseudonym, provider, content) != sorted(recorded):
        raise FingerprintMismatch("the claim's line fingerprints do not match its content and encounter")
