"""Transactions: the signed envelope, its stateless checks, its hash and its size limits.

Wire form (canonical JSON, see :mod:`careledger.core.codec`)::

    {"body": {"chain_id": str, "nonce": int, "payload": {...}, "signer": hex32,
              "type": "contract.action", "version": int},
     "sig": hex64}

* ``sig`` is Ed25519 over ``signing_message("tx", chain_id, encode(body))``;
* the transaction hash is ``SHA-256(wire bytes)``;
* ``nonce`` is the signer's sequence number: the first transaction of a key has nonce 1, each next
  one exactly the previous plus one;
* a transaction is at most ``max_tx_bytes`` bytes (genesis parameter, default 262,144).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from careledger.core import codec
from careledger.core.crypto import CryptoSuite, SigningKey, parse_public_key
from careledger.core.errors import AuthError, Code, EncodingError

DEFAULT_MAX_TX_BYTES = 262_144
BODY_KEYS = frozenset({"chain_id", "nonce", "payload", "signer", "type", "version"})
TYPE_RE = re.compile(r"[a-z][a-z_]{1,31}\.[a-z][a-z_]{1,47}")
SIG_HEX_RE = re.compile(r"[0-9a-f]{128}")
MAX_NONCE = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Tx:
    """A decoded, signature-checked transaction; ``payload`` is still an untyped JSON object."""

    raw: bytes
    hash: bytes
    chain_id: str
    type: str
    version: int
    signer: bytes
    signer_hex: str
    nonce: int
    payload: dict[str, Any]
    signature: bytes
    hash_hex: str = ""  # filled in by decode_tx; hex of ``hash``

    @property
    def kind(self) -> tuple[str, int]:
        return (self.type, self.version)


def body_of(chain_id: str, tx_type: str, version: int, signer_hex: str, nonce: int,
            payload: dict[str, Any]) -> dict[str, Any]:
    return {"chain_id": chain_id, "nonce": nonce, "payload": payload, "signer": signer_hex,
            "type": tx_type, "version": version}


def sign_tx(key: SigningKey, chain_id: str, tx_type: str, version: int, nonce: int,
            payload: dict[str, Any]) -> bytes:
    """Build and sign a transaction; returns its canonical wire bytes."""
    body = body_of(chain_id, tx_type, version, key.public_hex, nonce, payload)
    sig = key.sign("tx", chain_id, codec.encode(body))
    return codec.encode({"body": body, "sig": sig.hex()})


def signed_body(raw: bytes) -> bytes:
    """The body bytes a valid transaction's signature covers.

    Canonical form sorts ``body`` before ``sig``, so the wire bytes are exactly
    ``b'{"body":' + body + b',"sig":"' + 128 hex digits + b'"}'``.
    """
    return raw[8:-138]


def tx_hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def decode_tx(raw: bytes, chain_id: str, suite: CryptoSuite, max_bytes: int = DEFAULT_MAX_TX_BYTES,
              verify_signature: bool = True) -> Tx:
    """Decode wire bytes and run the envelope's checks, 1 to 13 of docs/protocol.md section 4.1 in
    that order, then (``verify_signature``) the signature itself, check 16.

    Raises :class:`EncodingError` (OVERSIZED, MALFORMED_ENCODING, NON_CANONICAL_ENCODING,
    INVALID_PAYLOAD for a wrong envelope shape) or :class:`AuthError` (WRONG_CHAIN,
    MISSING_SIGNATURE, BAD_SIGNATURE, UNKNOWN_SIGNER for a malformed key). A node checks the type
    and the payload (checks 14 and 15) before the signature: ``chain.executor.check_stateless``
    decodes with ``verify_signature=False`` and calls :func:`verify_tx_signature` last.
    """
    if len(raw) > max_bytes:
        raise EncodingError(f"transaction is {len(raw)} bytes; the limit is {max_bytes}", Code.OVERSIZED)
    doc = codec.decode(raw)
    if type(doc) is not dict or "body" not in doc:
        raise EncodingError("a transaction is an object with 'body' and 'sig'", Code.INVALID_PAYLOAD)
    if "sig" not in doc or doc["sig"] in (None, ""):
        raise AuthError("transaction is not signed", Code.MISSING_SIGNATURE)
    if len(doc) != 2:
        raise EncodingError("unexpected fields in the transaction envelope", Code.INVALID_PAYLOAD)
    body, sig_hex = doc["body"], doc["sig"]
    if type(body) is not dict or body.keys() != BODY_KEYS:
        raise EncodingError(f"body must have exactly the fields {sorted(BODY_KEYS)}", Code.INVALID_PAYLOAD)
    tx_type, version, nonce = body["type"], body["version"], body["nonce"]
    if type(tx_type) is not str or not TYPE_RE.fullmatch(tx_type):
        raise EncodingError("type must look like 'contract.action'", Code.INVALID_PAYLOAD)
    if type(version) is not int or not 1 <= version <= 65535:
        raise EncodingError("version must be an integer 1..65535", Code.INVALID_PAYLOAD)
    if type(nonce) is not int or not 1 <= nonce <= MAX_NONCE:
        raise EncodingError("nonce must be a positive integer", Code.INVALID_PAYLOAD)
    if type(body["payload"]) is not dict:
        raise EncodingError("payload must be an object", Code.INVALID_PAYLOAD)
    if type(body["chain_id"]) is not str or body["chain_id"] != chain_id:
        raise AuthError(f"transaction is for chain {str(body['chain_id'])[:64]!r}, this is {chain_id!r}",
                        Code.WRONG_CHAIN)
    if type(body["signer"]) is not str:
        raise AuthError("signer must be a hex public key", Code.UNKNOWN_SIGNER)
    signer = parse_public_key(body["signer"])
    if type(sig_hex) is not str or not SIG_HEX_RE.fullmatch(sig_hex):
        raise AuthError("sig must be 128 lower-case hex characters", Code.BAD_SIGNATURE)
    try:
        signature = bytes.fromhex(sig_hex)
    except ValueError as exc:
        raise AuthError("sig is not hex", Code.BAD_SIGNATURE) from exc
    digest = tx_hash(raw)
    tx = Tx(raw=raw, hash=digest, hash_hex=digest.hex(), chain_id=chain_id, type=tx_type, version=version,
            signer=signer, signer_hex=body["signer"], nonce=nonce, payload=body["payload"], signature=signature)
    if verify_signature:
        verify_tx_signature(tx, suite)
    return tx


def verify_tx_signature(tx: Tx, suite: CryptoSuite) -> None:
    """Check 16 of docs/protocol.md section 4.1: ``tx.signature`` signs the body for ``tx.signer``.

    Raises AuthError(BAD_SIGNATURE) when it does not verify in domain ``tx`` on ``tx.chain_id``
    (another domain or chain, another key, a changed body), or when the key or signature is not a
    strict Ed25519 encoding (:func:`careledger.core.crypto.check_ed25519_encoding`).
    """
    suite.verify(tx.signer, "tx", tx.chain_id, signed_body(tx.raw), tx.signature)
