"""Per-study keys and pseudonyms, and the linkage statement a patient gives her custodians (pure).

The scheme (shared with clinical trials, byte for byte)::

    study seed       = HKDF-SHA256(ikm = the patient's 32-byte Ed25519 seed,
                                   salt = b"careledger/study-key/v1", info = study id (UTF-8), length 32)
    study key        = the Ed25519 key of that seed
    study pseudonym  = "sp-" + hex(SHA-256(study public key)[:16])

Broad consent to a category of research uses the same derivation with ``info = "category/<code>"``
(a study id never contains ``/``, so the two never collide).

Research consent is signed with the study key, an unregistered key, so no member can link the study
pseudonym to the patient's other pseudonyms. To let a custodian that holds her records select them,
she signs a *linkage statement* with both her registered key and the study key and hands it to that
custodian only (off-ledger, through its gateway)::

    statement = canonical {"chain_id", "kind": "careledger/study-linkage/v1", "patient_key",
                           "scope": "study" | "category", "study_key", "target"}
    signatures: Ed25519 in the "proof" domain over b"careledger/study-linkage/v1" 0x00 ‖ statement,
                one by the patient key, one by the study key
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from careledger.contracts.identity import compute_pseudonym
from careledger.contracts.research.layout import compute_study_pseudonym
from careledger.core import codec
from careledger.core.crypto import ED25519_SHA256, SigningKey, parse_public_key
from careledger.core.errors import AuthError, Code, LedgerError

STUDY_KEY_SALT = b"careledger/study-key/v1"
LINKAGE_KIND = "careledger/study-linkage/v1"
_LINKAGE_TAG = LINKAGE_KIND.encode() + b"\x00"


class LinkageInvalid(LedgerError):
    default_code = Code.LINKAGE_INVALID


def scope_info(scope: str, target: str) -> str:
    """The HKDF ``info`` of a research scope: the study id, or ``category/<code>``."""
    if scope == "study":
        return target
    if scope == "category":
        return f"category/{target}"
    raise ValueError(f"unknown research scope {scope!r}")


def derive_study_key(patient_seed: bytes, info: str) -> SigningKey:
    """The patient's key for one study (``info`` = the study id) or category (:func:`scope_info`)."""
    if len(patient_seed) != 32:
        raise ValueError("a patient seed is 32 bytes")
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=STUDY_KEY_SALT,
                info=info.encode("utf-8")).derive(patient_seed)
    return SigningKey(seed)


def study_pseudonym(study_key: SigningKey) -> str:
    return compute_study_pseudonym(study_key.public_hex)


@dataclass(frozen=True, slots=True)
class Linkage:
    """A verified linkage: the patient pseudonym ``patient`` holds the study pseudonym ``subject``."""

    patient: str
    subject: str
    scope: str
    target: str


def _statement(chain_id: str, patient_key: str, study_key: str, scope: str, target: str) -> dict[str, Any]:
    return {"chain_id": chain_id, "kind": LINKAGE_KIND, "patient_key": patient_key, "scope": scope,
            "study_key": study_key, "target": target}


def make_linkage_statement(patient: SigningKey, chain_id: str, scope: str, target: str) -> dict[str, Any]:
    """The signed statement linking ``patient`` to her key for (``scope``, ``target``). For custodians only."""
    study = derive_study_key(patient.seed, scope_info(scope, target))
    body = _statement(chain_id, patient.public_hex, study.public_hex, scope, target)
    message = _LINKAGE_TAG + codec.encode(body)
    return {"statement": body, "patient_sig": patient.sign("proof", chain_id, message).hex(),
            "study_sig": study.sign("proof", chain_id, message).hex()}


def verify_linkage_statement(doc: Any, chain_id: str) -> Linkage:
    """Check both signatures of a linkage statement for this chain. Raises :class:`LinkageInvalid`
    (LINKAGE_INVALID) for a malformed statement, another chain, or a bad signature."""
    try:
        body = doc["statement"]
        expected = _statement(body["chain_id"], body["patient_key"], body["study_key"], body["scope"],
                              body["target"])
        if body != expected or body["scope"] not in ("study", "category") or type(body["target"]) is not str:
            raise LinkageInvalid("the linkage statement has unexpected fields")
        patient_sig, study_sig = bytes.fromhex(doc["patient_sig"]), bytes.fromhex(doc["study_sig"])
        patient_pub, study_pub = parse_public_key(body["patient_key"]), parse_public_key(body["study_key"])
    except (KeyError, TypeError, ValueError, AuthError) as exc:
        raise LinkageInvalid(f"malformed linkage statement ({type(exc).__name__})") from None
    if body["chain_id"] != chain_id:
        raise LinkageInvalid("the linkage statement is for another chain")
    message = _LINKAGE_TAG + codec.encode(body)
    try:
        ED25519_SHA256.verify(patient_pub, "proof", chain_id, message, patient_sig)
        ED25519_SHA256.verify(study_pub, "proof", chain_id, message, study_sig)
    except AuthError:
        raise LinkageInvalid("a linkage statement signature does not verify") from None
    return Linkage(compute_pseudonym(body["patient_key"]), compute_study_pseudonym(body["study_key"]),
                   body["scope"], body["target"])
