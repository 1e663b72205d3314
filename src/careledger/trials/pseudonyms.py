"""The patient's per-trial study key, the subject pseudonym, and the off-ledger linkage statement.

A patient joins a trial under a key derived for that trial alone (the scheme is shared with the
research registry)::

    study seed = HKDF-SHA256(ikm = the patient's 32-byte private seed, salt = b"careledger/study-key/v1",
                             info = trial id as UTF-8, length = 32)
    study key  = the Ed25519 key of that seed
    subject    = "sp-" + hex(first 16 bytes of SHA-256(study public key))

She signs her trial consent with the study key, which is never registered, so nothing on the ledger
links the subject to her other pseudonyms (or to her other trials). When the site must know who the
subject is, she hands it, off the ledger, a **linkage statement**: the trial, the site, both public
keys and both pseudonyms, signed with both keys (signing domain ``proof``, a message that starts
with its own tag, so it can never pass for a transaction or a vault request).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from careledger.contracts.identity import compute_pseudonym
from careledger.contracts.trials.layout import compute_subject_pseudonym
from careledger.core import codec
from careledger.core.crypto import SEED_BYTES, SUITES, SigningKey, parse_public_key
from careledger.core.errors import AuthError, Code

STUDY_KEY_SALT = b"careledger/study-key/v1"
LINKAGE_KIND = "careledger/trial-linkage/v1"
LINKAGE_DOMAIN = "proof"


def derive_study_key(patient_seed: bytes, trial: str) -> SigningKey:
    """The patient's Ed25519 study key for ``trial`` (HKDF-SHA256 of her private seed; see the module)."""
    if len(patient_seed) != SEED_BYTES:
        raise ValueError("the patient's private seed is 32 bytes")
    seed = HKDF(algorithm=hashes.SHA256(), length=SEED_BYTES, salt=STUDY_KEY_SALT,
                info=trial.encode("utf-8")).derive(patient_seed)
    return SigningKey(seed)


def subject_pseudonym(patient_seed: bytes, trial: str) -> str:
    """The subject pseudonym the patient appears under in ``trial``."""
    return compute_subject_pseudonym(derive_study_key(patient_seed, trial).public_hex)


def _linkage_message(body: dict[str, Any]) -> bytes:
    return codec.encode(body)


def linkage_statement(patient: SigningKey, trial: str, site: str, chain_id: str, issued_ms: int) -> dict[str, Any]:
    """A statement, signed with the patient's key and her study key, that the subject is her; for the site only."""
    study = derive_study_key(patient.seed, trial)
    body = {"issued_ms": issued_ms, "kind": LINKAGE_KIND, "patient": compute_pseudonym(patient.public_hex),
            "patient_key": patient.public_hex, "site": site, "study_key": study.public_hex,
            "subject": compute_subject_pseudonym(study.public_hex), "trial": trial}
    message = _linkage_message(body)
    return {"body": body, "patient_signature": patient.sign(LINKAGE_DOMAIN, chain_id, message).hex(),
            "study_signature": study.sign(LINKAGE_DOMAIN, chain_id, message).hex()}


def verify_linkage_statement(statement: dict[str, Any], chain_id: str, trial: str, site: str) -> tuple[str, str]:
    """Check a linkage statement for ``trial`` at ``site``; returns (patient pseudonym, subject pseudonym).

    Raises :class:`AuthError`: REQUEST_MALFORMED for a statement that is not one (missing fields,
    malformed keys or signatures), is for another trial or site, or whose pseudonyms do not match its
    keys; BAD_SIGNATURE when either signature fails (another chain, another key, a changed body).
    """
    try:
        body = statement["body"]
        patient_key = parse_public_key(body["patient_key"])
        study_key = parse_public_key(body["study_key"])
        signatures = (bytes.fromhex(statement["patient_signature"]), bytes.fromhex(statement["study_signature"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise AuthError("not a linkage statement", Code.REQUEST_MALFORMED) from exc
    if body.get("kind") != LINKAGE_KIND or body.get("trial") != trial or body.get("site") != site:
        raise AuthError("the statement is for another trial or site", Code.REQUEST_MALFORMED)
    if body.get("patient") != compute_pseudonym(body["patient_key"]) \
            or body.get("subject") != compute_subject_pseudonym(body["study_key"]):
        raise AuthError("the pseudonyms do not match the keys", Code.REQUEST_MALFORMED)
    suite = SUITES["ed25519-sha256"]
    message = _linkage_message(body)
    suite.verify(patient_key, LINKAGE_DOMAIN, chain_id, message, signatures[0])
    suite.verify(study_key, LINKAGE_DOMAIN, chain_id, message, signatures[1])
    return body["patient"], body["subject"]


__all__ = ["STUDY_KEY_SALT", "derive_study_key", "linkage_statement", "subject_pseudonym",
           "verify_linkage_statement"]
