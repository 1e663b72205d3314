"""The crypto suite: signatures, hashes and signing domains, behind one small interface.

The genesis file names the suite (``ed25519-sha256`` by default: Ed25519 signatures from libsodium
through PyNaCl, SHA-256 hashes). Contracts never call a primitive directly; they go through
:class:`CryptoSuite`, so that another suite (SM2/SM3 for Chinese deployments) can be added to
:data:`SUITES` without touching them.

Signatures are always over *domain-separated* bytes::

    b"CareLedger/" + domain + b"/v1" + 0x00 + chain_id + 0x00 + message

where ``domain`` is one of :data:`DOMAINS`. A signature made for one chain or one purpose can
therefore never be replayed on another. ``verify`` raises, it never returns a bool.
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


@dataclass(frozen=True)
class CryptoSuite:
    """A named set of primitives. Only ``ed25519-sha256`` exists today."""

    name: str

    def hash(self, data: bytes) -> bytes:
        return sha256(data)

    def verify(self, public_key: bytes, domain: str, chain_id: str, message: bytes, signature: bytes) -> None:
        """Raise AuthError(BAD_SIGNATURE) unless ``signature`` signs ``message`` in ``domain`` on ``chain_id``."""
        if len(signature) != SIGNATURE_BYTES:
            raise AuthError("signature must be 64 bytes", Code.BAD_SIGNATURE)
        if len(public_key) != PUBLIC_KEY_BYTES:
            raise AuthError("public key must be 32 bytes", Code.BAD_SIGNATURE)
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
