"""Passphrase-encrypted key files: scrypt to derive a key, AES-256-GCM to seal the Ed25519 seed.

The CLI and the web console (``careledger.console``, in the browser with noble-hashes' scrypt and
WebCrypto's AES-GCM) read and write the same format, so a key encrypted by one opens in the other.
Format (``version`` 2; ``docs/console.md`` is the reference)::

    {"crypto": {"cipher": "aes-256-gcm", "ciphertext": hex(seed ‖ tag), "kdf": "scrypt",
                "kdfparams": {"dklen": 32, "n": 131072, "p": 1, "r": 8, "salt": hex16..64},
                "nonce": hex12},
     "kind": "ed25519", "name": str, "public_key": hex32, "version": 2}

* ``passphrase`` bytes are the UTF-8 of its Unicode NFC normal form, so the same words typed on
  another keyboard or system open the file;
* ``dk = scrypt(passphrase, salt, N=n, r=r, p=p, dkLen=32)`` (RFC 7914);
* ``ciphertext = AES-256-GCM(dk, nonce, seed, aad)`` with the 16-byte tag appended, and
  ``aad = "CareLedger/keyfile/v2" ‖ 0x00 ‖ public_key`` (ASCII hex): a sealed seed moved into a
  file naming another public key does not open;
* opening re-derives the public key from the seed and refuses a file whose ``public_key`` differs.

Parameters are bounded so a hostile file cannot make a reader spend unbounded memory or time:
``n`` a power of two from 2^10 to 2^20, ``r`` 1 to 32, ``p`` 1 to 16, ``128·n·r`` at most 256 MiB,
salt 16 to 64 bytes. New files use n = 2^17, r = 8, p = 1 (128 MiB, about a second).

Errors: :class:`KeyFileError` (not a key file, or its parameters are out of bounds) and its subclass
:class:`WrongPassphrase` (the tag does not verify: a wrong passphrase or a changed file).
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from careledger.core.crypto import SigningKey
from careledger.keys import KeyFileError

FORMAT_VERSION = 2
AAD_PREFIX = b"CareLedger/keyfile/v2\x00"
DEFAULT_N = 2**17
DEFAULT_R = 8
DEFAULT_P = 1
MIN_N, MAX_N = 2**10, 2**20
MAX_R, MAX_P = 32, 16
MAX_MEMORY = 256 * 1024 * 1024
_HEX = re.compile(r"^(?:[0-9a-f]{2})+$")


class WrongPassphrase(KeyFileError):
    """The passphrase does not open the key file (or the file was changed)."""


def passphrase_bytes(passphrase: str) -> bytes:
    """The bytes scrypt sees: UTF-8 of the NFC normal form. Raises KeyFileError for an empty passphrase."""
    if not passphrase:
        raise KeyFileError("the passphrase is empty")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def check_kdf_params(n: object, r: object, p: object) -> tuple[int, int, int]:
    """The scrypt parameters if they are within the bounds of the module docstring; KeyFileError otherwise."""
    if type(n) is not int or type(r) is not int or type(p) is not int:
        raise KeyFileError("scrypt parameters n, r and p must be integers")
    if not MIN_N <= n <= MAX_N or n & (n - 1):
        raise KeyFileError(f"scrypt n must be a power of two from {MIN_N} to {MAX_N}")
    if not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
        raise KeyFileError(f"scrypt r must be 1 to {MAX_R} and p 1 to {MAX_P}")
    if 128 * n * r > MAX_MEMORY:
        raise KeyFileError("scrypt parameters need more than 256 MiB of memory")
    return n, r, p


def derive_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """scrypt(passphrase, salt, n, r, p) → 32 bytes (RFC 7914), after :func:`check_kdf_params`."""
    check_kdf_params(n, r, p)
    return hashlib.scrypt(passphrase_bytes(passphrase), salt=salt, n=n, r=r, p=p, dklen=32,
                          maxmem=128 * n * r * 2 + 1024 * 1024)


def _aad(public_hex: str) -> bytes:
    return AAD_PREFIX + public_hex.encode("ascii")


def encrypt_key(key: SigningKey, passphrase: str, name: str = "", *, n: int = DEFAULT_N, r: int = DEFAULT_R,
                p: int = DEFAULT_P, salt: bytes | None = None, nonce: bytes | None = None) -> dict[str, Any]:
    """The version-2 key document sealing ``key`` under ``passphrase``.

    ``salt`` (16 bytes) and ``nonce`` (12 bytes) are random unless given (test vectors give them).
    Raises KeyFileError for an empty passphrase or out-of-bounds parameters.
    """
    salt = os.urandom(16) if salt is None else salt
    nonce = os.urandom(12) if nonce is None else nonce
    if not 16 <= len(salt) <= 64 or len(nonce) != 12:
        raise KeyFileError("the salt must be 16 to 64 bytes and the nonce 12")
    dk = derive_key(passphrase, salt, n, r, p)
    sealed = AESGCM(dk).encrypt(nonce, key.seed, _aad(key.public_hex))
    return {"crypto": {"cipher": "aes-256-gcm", "ciphertext": sealed.hex(), "kdf": "scrypt",
                       "kdfparams": {"dklen": 32, "n": n, "p": p, "r": r, "salt": salt.hex()},
                       "nonce": nonce.hex()},
            "kind": "ed25519", "name": name, "public_key": key.public_hex, "version": FORMAT_VERSION}


def _hex_field(obj: dict[str, Any], name: str, sizes: range) -> bytes:
    value = obj.get(name)
    if type(value) is not str or not _HEX.match(value) or len(value) // 2 not in sizes:
        raise KeyFileError(f"key file field {name!r} must be lower-case hex of {sizes.start} to {sizes.stop - 1} bytes")
    return bytes.fromhex(value)


def is_encrypted(doc: object) -> bool:
    """Whether ``doc`` (a decoded key file) is a passphrase-encrypted one (version 2)."""
    return isinstance(doc, dict) and doc.get("version") == FORMAT_VERSION and "crypto" in doc


def decrypt_key(doc: object, passphrase: str) -> SigningKey:
    """Open a version-2 key document.

    Raises KeyFileError when ``doc`` is not one (wrong kind, version, cipher or KDF, missing or
    malformed fields, parameters out of bounds, a seed of the wrong size, or a seed whose public key
    is not ``public_key``) and WrongPassphrase when the GCM tag does not verify.
    """
    if not isinstance(doc, dict) or doc.get("kind") != "ed25519" or doc.get("version") != FORMAT_VERSION:
        raise KeyFileError("not a CareLedger encrypted key file (kind ed25519, version 2)")
    crypto, public_hex = doc.get("crypto"), doc.get("public_key")
    if type(public_hex) is not str or not re.fullmatch(r"[0-9a-f]{64}", public_hex):
        raise KeyFileError("key file public_key must be 64 lower-case hex characters")
    if not isinstance(crypto, dict) or crypto.get("kdf") != "scrypt" or crypto.get("cipher") != "aes-256-gcm":
        raise KeyFileError("key file must use kdf scrypt and cipher aes-256-gcm")
    params = crypto.get("kdfparams")
    if not isinstance(params, dict) or params.get("dklen") != 32:
        raise KeyFileError("key file kdfparams must name dklen 32, n, r, p and salt")
    n, r, p = check_kdf_params(params.get("n"), params.get("r"), params.get("p"))
    salt = _hex_field(params, "salt", range(16, 65))
    nonce = _hex_field(crypto, "nonce", range(12, 13))
    sealed = _hex_field(crypto, "ciphertext", range(48, 49))
    dk = derive_key(passphrase, salt, n, r, p)
    try:
        seed = AESGCM(dk).decrypt(nonce, sealed, _aad(public_hex))
    except InvalidTag:
        raise WrongPassphrase("the passphrase does not open this key file") from None
    key = SigningKey(seed)
    if key.public_hex != public_hex:
        raise KeyFileError("key file public key does not match the sealed seed")
    return key


def load_key_document(doc: object, passphrase: str | None = None) -> SigningKey:
    """A key from a decoded key file of either version: version 1 (plain seed, ``careledger.keys``)
    or version 2 (encrypted; needs ``passphrase``). Raises KeyFileError or WrongPassphrase."""
    if is_encrypted(doc):
        if passphrase is None:
            raise KeyFileError("this key file is encrypted: a passphrase is needed")
        return decrypt_key(doc, passphrase)
    if not isinstance(doc, dict) or doc.get("kind") != "ed25519" or doc.get("version") != 1:
        raise KeyFileError("not a CareLedger key file")
    try:
        key = SigningKey(bytes.fromhex(doc["seed"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyFileError("key file seed must be 64 hex characters") from exc
    if doc.get("public_key") != key.public_hex:
        raise KeyFileError("key file public key does not match the seed")
    return key


__all__ = ["DEFAULT_N", "DEFAULT_P", "DEFAULT_R", "FORMAT_VERSION", "KeyFileError", "WrongPassphrase",
           "check_kdf_params", "decrypt_key", "derive_key", "encrypt_key", "is_encrypted", "load_key_document",
           "passphrase_bytes"]
