"""Key files: one Ed25519 key per JSON file, readable by its owner only.

Format (``version`` 1)::

    {"kind": "ed25519", "name": str, "public_key": hex32, "seed": hex32, "version": 1}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from careledger.core.crypto import SigningKey


class KeyFileError(ValueError):
    pass


def write_key(path: str | os.PathLike[str], key: SigningKey, name: str = "") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"kind": "ed25519", "name": name or path.stem, "public_key": key.public_hex, "seed": key.seed.hex(),
           "version": 1}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")


def read_key(path: str | os.PathLike[str]) -> SigningKey:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        key = SigningKey(bytes.fromhex(doc["seed"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a CareLedger key file") from exc
    if doc.get("public_key") != key.public_hex:
        raise KeyFileError(f"{path}: public key does not match the seed")
    return key


def new_key(path: str | os.PathLike[str], name: str = "") -> SigningKey:
    key = SigningKey.generate()
    write_key(path, key, name)
    return key
