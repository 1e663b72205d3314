"""Study keys, study pseudonyms and the linkage statement: one scheme for the research registry and
clinical trials (a trial is a study of the registry), pure and deterministic.

A patient joins a study (a data-sharing study or a trial) under a key she derives for it alone::

    study seed       = HKDF-SHA256(ikm = the patient's 32-byte Ed25519 seed, salt = b"careledger/study-key/v1",
                                   info = scope info (UTF-8), length 32)
    scope info       = the study id (a trial's is its ``trl-…`` id), or ``category/<code>`` for broad
                       consent to a category of research (a study id never contains ``/``)
    study key        = the Ed25519 key of that seed
    study pseudonym  = "sp-" + hex(SHA-256(study public key bytes)[:16])

She signs her research or trial consent with the study key, which is never registered, so nothing
on the ledger links the pseudonym to her registered one (``pt-…``) or to her other studies.

When one party must know who the pseudonym is (a custodian selecting her records for a release, a
trial site treating her), she hands that party, off the ledger, a **linkage statement**
(``careledger/study-linkage/v2``)::

    statement = canonical {"audience": the organisation it is for, "chain_id", "issued_ms",
                           "kind": "careledger/study-linkage/v2", "patient_key",
                           "scope": "study" | "category", "study_key", "target": study id or category code}
    message   = b"careledger/study-linkage/v2" 0x00 || statement
    document  = {"statement", "patient_sig", "study_sig"}: Ed25519 in the ``proof`` domain over the
                message, one by her registered key, one by the study key

It unifies the research registry's ``careledger/study-linkage/v1`` (scope and target, chain id in the
statement, a tagged message) and the trials' ``careledger/trial-linkage/v1`` (bound to one site,
dated): it keeps every binding of both (both keys, the chain, the study or category, the one
organisation it is addressed to, the time it was issued), and the pseudonyms are recomputed from the
keys rather than carried. A party accepts a statement only when it is the audience: one shown to
another member proves nothing there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from careledger.contracts.identity import compute_pseudonym
from careledger.core import codec
from careledger.core.crypto import ED25519_SHA256, SEED_BYTES, SigningKey, parse_public_key
from careledger.core.errors import AuthError, Code, LedgerError

STUDY_KEY_SALT = b"careledger/study-key/v1"
STUDY_PSEUDONYM_PREFIX = "sp-"
SCOPES = ("study", "category")
LINKAGE_KIND = "careledger/study-linkage/v2"
LINKAGE_DOMAIN = "proof"
_LINKAGE_TAG = LINKAGE_KIND.encode() + b"\x00"
_STATEMENT_FIELDS = frozenset({"audience", "chain_id", "issued_ms", "kind", "patient_key", "scope", "study_key",
                               "target"})


def compute_study_pseudonym(public_key_hex: str) -> str:
    """``sp-`` + hex of the first 16 bytes of SHA-256(study public key bytes): a subject's name in a
    study or trial. Raises ValueError for a key that is not hex."""
    return STUDY_PSEUDONYM_PREFIX + hashlib.sha256(bytes.fromhex(public_key_hex)).digest()[:16].hex()


def scope_info(scope: str, target: str) -> str:
    """The HKDF ``info`` of a scope: the study (or trial) id, or ``category/<code>``. Raises ValueError
    for another scope."""
    if scope == "study":
        return target
    if scope == "category":
        return f"category/{target}"
    raise ValueError(f"unknown research scope {scope!r}")


def derive_study_key(patient_seed: bytes, info: str) -> SigningKey:
    """The patient's key for one study or trial (``info`` = its id) or category (:func:`scope_info`).
    Raises ValueError for a seed that is not 32 bytes."""
    if len(patient_seed) != SEED_BYTES:
        raise ValueError("a patient seed is 32 bytes")
    seed = HKDF(algorithm=hashes.SHA256(), length=SEED_BYTES, salt=STUDY_KEY_SALT,
                info=info.encode("utf-8")).derive(patient_seed)
    return SigningKey(seed)


def study_pseudonym(study_key: SigningKey) -> str:
    """The pseudonym a study key signs as."""
    return compute_study_pseudonym(study_key.public_hex)


def subject_pseudonym(patient_seed: bytes, study: str) -> str:
    """The pseudonym the patient appears under in ``study`` (a study or trial id)."""
    return study_pseudonym(derive_study_key(patient_seed, study))


class LinkageInvalid(LedgerError):
    """A linkage statement that is malformed, for another chain, study or audience, or badly signed."""

    default_code = Code.LINKAGE_INVALID


@dataclass(frozen=True, slots=True)
class Linkage:
    """A verified linkage: the patient pseudonym ``patient`` holds the study pseudonym ``subject``."""

    patient: str
    subject: str
    scope: str
    target: str
    audience: str
    issued_ms: int


def _message(statement: dict[str, Any]) -> bytes:
    return _LINKAGE_TAG + codec.encode(statement)


def make_linkage_statement(patient: SigningKey, chain_id: str, scope: str, target: str, audience: str,
                           issued_ms: int) -> dict[str, Any]:
    """The statement, signed by ``patient`` and by her key for (``scope``, ``target``), that the study
    pseudonym is hers; for ``audience`` (an organisation id) only. Raises ValueError for an unknown
    scope or a negative time."""
    if issued_ms < 0:
        raise ValueError("issued_ms is a time in ms since the epoch")
    study = derive_study_key(patient.seed, scope_info(scope, target))
    statement = {"audience": audience, "chain_id": chain_id, "issued_ms": issued_ms, "kind": LINKAGE_KIND,
                 "patient_key": patient.public_hex, "scope": scope, "study_key": study.public_hex, "target": target}
    message = _message(statement)
    return {"patient_sig": patient.sign(LINKAGE_DOMAIN, chain_id, message).hex(), "statement": statement,
            "study_sig": study.sign(LINKAGE_DOMAIN, chain_id, message).hex()}


def verify_linkage_statement(doc: Any, chain_id: str, audience: str, *, scope: str | None = None,
                             target: str | None = None) -> Linkage:
    """Check a linkage statement addressed to ``audience`` on this chain (and, when given, for this
    ``scope`` and ``target``); returns who it links.

    Raises :class:`LinkageInvalid` (LINKAGE_INVALID) when it is malformed (not the statement's exact
    fields and types, an unknown scope, keys or signatures that do not parse), names another chain,
    audience, scope or target, or either signature does not verify (a changed statement, another key).
    """
    try:
        statement = doc["statement"]
        if type(statement) is not dict or statement.keys() != _STATEMENT_FIELDS or statement["kind"] != LINKAGE_KIND:
            raise LinkageInvalid("the linkage statement has unexpected fields")
        if statement["scope"] not in SCOPES or any(type(statement[f]) is not str for f in (
                "audience", "chain_id", "target")) or type(statement["issued_ms"]) is not int \
                or statement["issued_ms"] < 0:
            raise LinkageInvalid("the linkage statement has unexpected values")
        patient_sig, study_sig = bytes.fromhex(doc["patient_sig"]), bytes.fromhex(doc["study_sig"])
        patient_pub, study_pub = parse_public_key(statement["patient_key"]), parse_public_key(statement["study_key"])
    except (KeyError, TypeError, ValueError, AuthError) as exc:
        raise LinkageInvalid(f"malformed linkage statement ({type(exc).__name__})") from None
    if statement["chain_id"] != chain_id:
        raise LinkageInvalid("the linkage statement is for another chain")
    if statement["audience"] != audience:
        raise LinkageInvalid("the linkage statement is addressed to another organisation")
    if (scope is not None and statement["scope"] != scope) or (target is not None and statement["target"] != target):
        raise LinkageInvalid("the linkage statement is for another study")
    message = _message(statement)
    try:
        ED25519_SHA256.verify(patient_pub, LINKAGE_DOMAIN, chain_id, message, patient_sig)
        ED25519_SHA256.verify(study_pub, LINKAGE_DOMAIN, chain_id, message, study_sig)
    except AuthError:
        raise LinkageInvalid("a linkage statement signature does not verify") from None
    return Linkage(compute_pseudonym(statement["patient_key"]), compute_study_pseudonym(statement["study_key"]),
                   statement["scope"], statement["target"], statement["audience"], statement["issued_ms"])


__all__ = ["LINKAGE_DOMAIN", "LINKAGE_KIND", "SCOPES", "STUDY_KEY_SALT", "STUDY_PSEUDONYM_PREFIX", "Linkage",
           "LinkageInvalid", "compute_study_pseudonym", "derive_study_key", "make_linkage_statement", "scope_info",
           "study_pseudonym", "subject_pseudonym", "verify_linkage_statement"]
