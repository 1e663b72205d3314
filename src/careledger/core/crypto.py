"""The crypto suite: signatures, hashes and signing domains, behind one small interface.

The genesis file names the suite (``ed25519-sha256`` by default: Ed25519 signatures from libsodium
through PyNaCl, SHA-256 hashes). Contracts never call a primitive directly; they go through
:class:`CryptoSuite`, so that another suite (SM2/SM3 for Chinese deployments) can be added to
:data:`SUITES` without touching them.

Signatures are always over *domain-separated* bytes::

    b"CareLedger/" + domain + b"/v1" + 0x00 + chain_id + 0x00 + message

where ``domain`` is one of :data:`DOMAINS`. A signature made for one chain or one purpose can
therefore never be replayed on another. ``verify`` raises, it never returns a bool.

Ed25519 verification is *strict* and does not depend on the library's version: before libsodium
sees a signature, :func:`check_ed25519_encoding` refuses what RFC 8032 tolerates or leaves to the
verifier (a scalar ``S`` that is not reduced, a small-order or non-canonically encoded public key
or ``R``). Every libsodium release since 1.0.16 refuses these too; checking them here keeps every
node's verdict the same whatever libsodium it links. The remaining check is libsodium's cofactorless
equation ``[S]B == R + [k]A`` (with ``R`` compared by its canonical encoding).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

import nacl.exceptions
import nacl.signing

from careledger.core.errors import AuthError, Code

DOMAINS = frozenset({"tx", "block", "request", "proof"})
_KEY_HEX = re.compile(r"[0-9a-f]{64}")
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32

ED25519_P = 2**255 - 19
"""The field prime of Curve25519."""
ED25519_L = 2**252 + 27742317777372353535851937790883648493
"""The order of the base point: a signature's ``S`` must be below it (RFC 8032 section 5.1.7)."""
_Y_MASK = (1 << 255) - 1
SMALL_ORDER_Y = frozenset({
    0,  # (±sqrt(-1), 0): order 4
    1,  # the identity: order 1
    2707385501144840649318225287225658788936804267575313519463743609750303402022,  # order 8
    ED25519_P - 2707385501144840649318225287225658788936804267575313519463743609750303402022,  # order 8
    ED25519_P - 1,  # (0, -1): order 2
    ED25519_P,  # 0 again, non-canonically encoded
    ED25519_P + 1,  # 1 again, non-canonically encoded
})
"""The y-coordinates (sign bit cleared) of every encoding of a point of order 1, 2, 4 or 8: the
same list as libsodium's ``ge25519_has_small_order``."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def signing_message(domain: str, chain_id: str, message: bytes) -> bytes:
    """The exact bytes that are signed for ``domain`` on ``chain_id``."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown signing domain {domain!r}")
    return b"CareLedger/" + domain.encode() + b"/v1\x00" + chain_id.encode() + b"\x00" + message


@lru_cache(maxsize=65536)
def _verify_key(public_key: bytes) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(public_key)


def parse_public_key(text: str) -> bytes:
    """Decode a lower-case hex Ed25519 public key; raises AuthError(UNKNOWN_SIGNER) when malformed."""
    if not _KEY_HEX.fullmatch(text):  # bytes.fromhex alone would skip embedded spaces
        raise AuthError("public key must be 64 lower-case hex characters", Code.UNKNOWN_SIGNER)
    return bytes.fromhex(text)


def _y_of(encoding: bytes) -> int:
    """The y-coordinate of a 32-byte Edwards point encoding, sign bit of x cleared (little-endian)."""
    return int.from_bytes(encoding, "little") & _Y_MASK


def check_ed25519_encoding(public_key: bytes, signature: bytes) -> None:
    """Refuse an Ed25519 public key and signature that a strict verifier must refuse, in this order.

    Raises AuthError(BAD_SIGNATURE) when: the signature is not 64 bytes or the key not 32 bytes;
    the signature's ``S`` (bytes 32-63, little-endian) is not below the group order L (a malleable
    copy of a valid signature); its ``R`` (bytes 0-31) encodes y >= p or a point of small order; the
    public key encodes y >= p or a point of small order (a key for which a signature can verify for
    every message). Cheap (integer comparisons, no curve arithmetic).
    """
    if len(signature) != SIGNATURE_BYTES:
        raise AuthError("signature must be 64 bytes", Code.BAD_SIGNATURE)
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise AuthError("public key must be 32 bytes", Code.BAD_SIGNATURE)
    if int.from_bytes(signature[32:], "little") >= ED25519_L:
        raise AuthError("signature scalar S is not reduced modulo L (non-canonical)", Code.BAD_SIGNATURE)
    r_y = _y_of(signature[:32])
    if r_y in SMALL_ORDER_Y:
        raise AuthError("signature point R has small order", Code.BAD_SIGNATURE)
    if r_y >= ED25519_P:
        raise AuthError("signature point R is not canonically encoded", Code.BAD_SIGNATURE)
    a_y = _y_of(public_key)
    if a_y in SMALL_ORDER_Y:
        raise AuthError("public key is a point of small order", Code.BAD_SIGNATURE)
    if a_y >= ED25519_P:
        raise AuthError("public key is not canonically encoded", Code.BAD_SIGNATURE)


@dataclass(frozen=True)
class CryptoSuite:
    """A named set of primitives. Only ``ed25519-sha256`` exists today."""

    name: str

    def hash(self, data: bytes) -> bytes:
        return sha256(data)

    def verify(self, public_key: bytes, domain: str, chain_id: str, message: bytes, signature: bytes) -> None:
        """Raise AuthError(BAD_SIGNATURE) unless ``signature`` signs ``message`` in ``domain`` on ``chain_id``.

        The encodings are checked first (:func:`check_ed25519_encoding`), then libsodium verifies: a
        point that is not on the curve, or an equation that does not hold, is BAD_SIGNATURE too.
        """
        check_ed25519_encoding(public_key, signature)
        try:
            _verify_key(public_key).verify(signing_message(domain, chain_id, message), signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
            raise AuthError("signature does not verify", Code.BAD_SIGNATURE) from exc


ED25519_SHA256 = CryptoSuite("ed25519-sha256")
SUITES: dict[str, CryptoSuite] = {ED25519_SHA256.name: ED25519_SHA256}


class SigningKey:
    """An Ed25519 private key. Construct from a 32-byte seed, or :meth:`generate` one."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    @property
    def public_hex(self) -> str:
        return self.public_key.hex()

    def sign(self, domain: str, chain_id: str, message: bytes) -> bytes:
        return self._key.sign(signing_message(domain, chain_id, message)).signature

    def __repr__(self) -> str:  # never print the seed
        return f"SigningKey(public={self.public_hex[:16]}…)"
