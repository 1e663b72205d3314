"""A release's files sealed to the researcher's key: X25519 + HKDF-SHA256 + AES-256-GCM.

The recipient is a consortium member, whose key is Ed25519; its X25519 form is the birational map
libsodium provides (``crypto_sign_ed25519_pk_to_curve25519``). Sealing::

    e                = a fresh X25519 key (never reused)
    shared           = X25519(e, recipient X25519 public key)
    key              = HKDF-SHA256(shared, salt = e.public ‖ recipient X25519 public,
                                   info = b"careledger/research/release/v1", length 32)
    plaintext        = canonical JSON {"files": {name: hex of bytes}, "report": report JSON,
                                       "signature": custodian signature of the report}
    ciphertext       = AES-256-GCM(key, 96-bit random nonce, plaintext, aad = canonical header)
    header           = {"custodian", "dataset_root", "recipient", "release", "study"}

The header travels in clear (it is what the ledger anchors anyway) and is bound by the AAD, so a
package cannot be passed off as another release. Opening raises :class:`SealError`
(RELEASE_DECRYPT_FAILED) for any other key, a flipped byte or a changed header.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code, LedgerError

INFO = b"careledger/research/release/v1"
AAD_TAG = b"careledger/research/package/v1\x00"
NONCE_BYTES = 12


class SealError(LedgerError):
    default_code = Code.RELEASE_DECRYPT_FAILED


@dataclass(frozen=True, slots=True)
class SealedPackage:
    header: dict[str, Any]
    ephemeral: bytes
    nonce: bytes
    ciphertext: bytes

    def to_json(self) -> dict[str, Any]:
        return {"ciphertext": self.ciphertext.hex(), "ephemeral": self.ephemeral.hex(), "header": self.header,
                "nonce": self.nonce.hex()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SealedPackage:
        try:
            return cls(dict(doc["header"]), bytes.fromhex(doc["ephemeral"]), bytes.fromhex(doc["nonce"]),
                       bytes.fromhex(doc["ciphertext"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SealError(f"not a sealed release package ({type(exc).__name__})") from None


def _x25519_public(ed25519_public: bytes) -> bytes:
    return bytes(nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_public))


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=INFO).derive(shared)


def seal(header: dict[str, Any], contents: dict[str, Any], recipient_public_hex: str) -> SealedPackage:
    """Encrypt ``contents`` (canonical JSON) to the Ed25519 member key ``recipient_public_hex``."""
    try:
        recipient = _x25519_public(bytes.fromhex(recipient_public_hex))
    except (ValueError, nacl.exceptions.CryptoError) as exc:
        raise SealError("the recipient key is not an Ed25519 public key") from exc
    e = X25519PrivateKey.generate()
    ephemeral = e.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = _key(e.exchange(X25519PublicKey.from_public_bytes(recipient)), ephemeral, recipient)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, codec.encode(contents), AAD_TAG + codec.encode(header))
    return SealedPackage(header, ephemeral, nonce, ciphertext)


def open_sealed(package: SealedPackage, recipient: SigningKey) -> dict[str, Any]:
    """Decrypt a package with the recipient's Ed25519 key. Raises :class:`SealError`."""
    secret = bytes(nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(recipient.seed + recipient.public_key))
    mine = _x25519_public(recipient.public_key)
    try:
        shared = X25519PrivateKey.from_private_bytes(secret).exchange(
            X25519PublicKey.from_public_bytes(package.ephemeral))
        plaintext = AESGCM(_key(shared, package.ephemeral, mine)).decrypt(
            package.nonce, package.ciphertext, AAD_TAG + codec.encode(package.header))
    except (InvalidTag, ValueError) as exc:
        raise SealError("the package does not open with this key (wrong recipient, or altered)") from exc
    doc: dict[str, Any] = codec.decode(plaintext)
    return doc


def pack_release(release_id: str, files: dict[str, bytes], report: dict[str, Any], signature: str,
                 recipient_public_hex: str, signer: str | None = None) -> SealedPackage:
    """Seal a built release (files, report, the custodian's signature) for its recipient. ``signer``
    names the custodian key that signed the report (the gateway puts it in; the recipient checks it is
    a data steward or admin of the custodian)."""
    header = {"custodian": report["custodian"], "dataset_root": report["dataset_root"],
              "recipient": recipient_public_hex, "release": release_id, "study": report["study"]}
    contents: dict[str, Any] = {"files": {name: data.hex() for name, data in sorted(files.items())},
                                "report": report, "signature": signature}
    if signer is not None:
        contents["signer"] = signer
    return seal(header, contents, recipient_public_hex)


@dataclass(frozen=True, slots=True)
class OpenedRelease:
    """A package opened by its recipient: the release it is, its files, the report and who signed it."""

    release: str
    files: dict[str, bytes]
    report: dict[str, Any]
    signature: str
    signer: str | None


def open_release(package: SealedPackage, recipient: SigningKey) -> OpenedRelease:
    """Open a package addressed to ``recipient``. Raises :class:`SealError` (RELEASE_DECRYPT_FAILED)
    for another key, an altered package or malformed contents."""
    doc = open_sealed(package, recipient)
    files, report, signature = _contents(doc)
    signer = doc.get("signer")
    release = package.header.get("release")
    if (signer is not None and type(signer) is not str) or type(release) is not str:
        raise SealError("the package's contents are malformed (signer or release)")
    return OpenedRelease(release, files, report, signature, signer)


def unpack_release(package: SealedPackage, recipient: SigningKey) -> tuple[dict[str, bytes], dict[str, Any], str]:
    """(files, report JSON, custodian signature) of a package addressed to ``recipient``."""
    return _contents(open_sealed(package, recipient))


def _contents(doc: dict[str, Any]) -> tuple[dict[str, bytes], dict[str, Any], str]:
    try:
        files = {name: bytes.fromhex(data) for name, data in doc["files"].items()}
        return files, dict(doc["report"]), str(doc["signature"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SealError(f"the package's contents are malformed ({type(exc).__name__})") from None
