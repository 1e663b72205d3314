"""Key files: one Ed25519 key per JSON file, readable by its owner only.

Two formats, told apart by ``version``:

* version 1, the seed in the clear::

    {"kind": "ed25519", "name": str, "public_key": hex32, "seed": hex32, "version": 1}

* version 2, the seed sealed under a passphrase (scrypt + AES-256-GCM; :mod:`careledger.keycrypt`,
  the same format the web console reads and writes).

:func:`read_key` opens either; a version-2 file needs a passphrase, given as a string or as a
function asked only when the file turns out to be encrypted (so a command can prompt on a terminal
only when it must). :func:`read_public_key` reads the public half of either without a passphrase.

Errors: :class:`KeyFileError` (not a key file, or an encrypted one without a passphrase) and
:class:`careledger.keycrypt.WrongPassphrase`, its subclass.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from careledger.core.crypto import SigningKey

Passphrase = str | Callable[[], str] | None
"""A passphrase, a function that gives one when asked, or none."""


class KeyFileError(ValueError):
    pass


def _write_private(path: Path, doc: dict[str, Any], replace: bool = False) -> None:
    """Write ``doc`` as JSON, readable by its owner only; a new file unless ``replace`` (then it replaces
    ``path`` atomically: written beside it, synced, renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(f".{path.name}.tmp") if replace else path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(target, path)
    except BaseException:
        if replace:
            target.unlink(missing_ok=True)
        raise


def write_key(path: str | os.PathLike[str], key: SigningKey, name: str = "", passphrase: str | None = None) -> None:
    """Write ``key`` to a new file at ``path`` (refused if it exists): version 1, or version 2 sealed
    under ``passphrase`` when one is given."""
    path = Path(path)
    write_key_document(path, key_document(key, name or path.stem, passphrase))


def key_document(key: SigningKey, name: str, passphrase: str | None = None) -> dict[str, Any]:
    """The JSON document of a key file: version 1, or version 2 when ``passphrase`` is given."""
    if passphrase is not None:
        from careledger.keycrypt import encrypt_key

        return encrypt_key(key, passphrase, name)
    return {"kind": "ed25519", "name": name, "public_key": key.public_hex, "seed": key.seed.hex(), "version": 1}


def write_key_document(path: Path, doc: dict[str, Any], replace: bool = False) -> None:
    """Write a key file's document (see :func:`_write_private` for ``replace``)."""
    _write_private(path, doc, replace)


def read_key_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decoded JSON of a key file, of either version; KeyFileError when it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path} is not a CareLedger key file") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "ed25519" or doc.get("version") not in (1, 2):
        raise KeyFileError(f"{path} is not a CareLedger key file")
    return doc


def is_encrypted_file(path: str | os.PathLike[str]) -> bool:
    """Whether the key file at ``path`` is sealed under a passphrase (version 2)."""
    return read_key_document(path).get("version") == 2


def read_key(path: str | os.PathLike[str], passphrase: Passphrase = None) -> SigningKey:
    """The key in the file at ``path``, of either version. A version-2 file is opened with
    ``passphrase`` (called, if it is a function, only for such a file). Raises KeyFileError (not a
    key file; encrypted and no passphrase; a public key that does not match the seed) or
    WrongPassphrase."""
    from careledger.keycrypt import WrongPassphrase, load_key_document

    path = Path(path)
    doc = read_key_document(path)
    secret = passphrase() if callable(passphrase) and doc.get("version") == 2 else passphrase
    try:
        return load_key_document(doc, secret if isinstance(secret, str) else None)
    except WrongPassphrase as exc:
        raise WrongPassphrase(f"{path}: {exc}") from None
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def read_public_key(path: str | os.PathLike[str]) -> str:
    """The public key (hex) named by the key file at ``path``, of either version, without opening it.
    For a version-1 file it is checked against the seed."""
    doc = read_key_document(path)
    if doc.get("version") == 1:
        return read_key(path).public_hex
    public = doc.get("public_key")
    if type(public) is not str or not re.fullmatch(r"[0-9a-f]{64}", public):
        raise KeyFileError(f"{path}: public_key must be 64 lower-case hex characters")
    return public


def new_key(path: str | os.PathLike[str], name: str = "", passphrase: str | None = None) -> SigningKey:
    """Generate a key and write it to a new file at ``path`` (sealed under ``passphrase`` if given)."""
    key = SigningKey.generate()
    write_key(path, key, name, passphrase)
    return key
