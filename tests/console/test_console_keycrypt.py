"""The passphrase-encrypted key file format (careledger.keycrypt), against vectors the browser passes too."""

from __future__ import annotations

import copy
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from careledger.core.crypto import SigningKey
from careledger.keycrypt import (
    KeyFileError,
    WrongPassphrase,
    decrypt_key,
    derive_key,
    encrypt_key,
    is_encrypted,
    load_key_document,
)

VECTORS = json.loads((Path(__file__).parent / "keycrypt_vectors.json").read_text())["vectors"]
FAST = [v for v in VECTORS if v["document"]["crypto"]["kdfparams"]["n"] <= 4096]


def test_scrypt_known_answer_rfc7914() -> None:
    """RFC 7914 section 12, second vector (its first 32 bytes: scrypt's output is a PBKDF2 prefix)."""
    dk = derive_key("password", b"NaCl", 1024, 8, 16)
    assert dk.hex() == "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["label"])
def test_vectors_open_and_reseal_byte_exactly(vector: dict[str, Any]) -> None:
    doc = vector["document"]
    key = decrypt_key(doc, vector["passphrase"])
    assert key.seed.hex() == vector["seed"] and key.public_hex == vector["public_key"]
    params = doc["crypto"]["kdfparams"]
    again = encrypt_key(key, vector["passphrase"], doc["name"], n=params["n"], r=params["r"], p=params["p"],
                        salt=bytes.fromhex(params["salt"]), nonce=bytes.fromhex(doc["crypto"]["nonce"]))
    assert again == doc


def test_passphrase_is_nfc_normalised() -> None:
    nfd = next(v for v in VECTORS if v["label"] == "nfd")
    composed = unicodedata.normalize("NFC", nfd["passphrase"])
    assert composed != nfd["passphrase"]
    assert decrypt_key(nfd["document"], composed).public_hex == nfd["public_key"]


@pytest.mark.parametrize("vector", FAST, ids=lambda v: v["label"])
def test_wrong_passphrase_is_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(WrongPassphrase):
        decrypt_key(vector["document"], vector["passphrase"] + "x")


def _mutate(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target = out
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


BASE = FAST[0]
BAD_DOCS = [
    ("kind", ("kind",), "rsa", KeyFileError),
    ("version", ("version",), 3, KeyFileError),
    ("public key of another", ("public_key",), "00" * 32, WrongPassphrase),  # bound by the AAD
    ("public key upper-case", ("public_key",), BASE["public_key"].upper(), KeyFileError),
    ("kdf", ("crypto", "kdf"), "pbkdf2", KeyFileError),
    ("cipher", ("crypto", "cipher"), "aes-128-gcm", KeyFileError),
    ("n not a power of two", ("crypto", "kdfparams", "n"), 1000, KeyFileError),
    ("n too small", ("crypto", "kdfparams", "n"), 512, KeyFileError),
    ("n too large", ("crypto", "kdfparams", "n"), 2**21, KeyFileError),
    ("r at its bound", ("crypto", "kdfparams", "r"), 32, None),  # 2^10 · 32 · 128 = 4 MiB: allowed
    ("n as text", ("crypto", "kdfparams", "n"), "1024", KeyFileError),
    ("dklen", ("crypto", "kdfparams", "dklen"), 64, KeyFileError),
    ("salt short", ("crypto", "kdfparams", "salt"), "00" * 8, KeyFileError),
    ("salt missing", ("crypto", "kdfparams", "salt"), KeyError, KeyFileError),
    ("nonce size", ("crypto", "nonce"), "00" * 16, KeyFileError),
    ("ciphertext truncated", ("crypto", "ciphertext"), BASE["document"]["crypto"]["ciphertext"][:-2], KeyFileError),
    ("ciphertext flipped", ("crypto", "ciphertext"), "ff" + BASE["document"]["crypto"]["ciphertext"][2:],
     WrongPassphrase),
    ("crypto missing", ("crypto",), KeyError, KeyFileError),
]


@pytest.mark.parametrize(("what", "path", "value", "error"), BAD_DOCS, ids=[b[0] for b in BAD_DOCS])
def test_malformed_documents_are_refused(what: str, path: tuple[str, ...], value: Any,
                                         error: type[Exception] | None) -> None:
    doc = _mutate(BASE["document"], path, value)
    if error is None:  # within bounds, only the tag decides
        with pytest.raises(WrongPassphrase):
            decrypt_key(doc, BASE["passphrase"])
        return
    with pytest.raises(error):
        decrypt_key(doc, BASE["passphrase"])


def test_memory_bound_and_empty_passphrase() -> None:
    key = SigningKey(bytes(32))
    with pytest.raises(KeyFileError, match="256 MiB"):
        encrypt_key(key, "pw", n=2**20, r=8)
    with pytest.raises(KeyFileError, match="empty"):
        encrypt_key(key, "", n=1024)
    with pytest.raises(KeyFileError):
        encrypt_key(key, "pw", n=1024, salt=b"short")


def test_fresh_encryptions_differ_and_load_both_versions() -> None:
    key = SigningKey(bytes(range(32)))
    a, b = encrypt_key(key, "pw", "k", n=1024), encrypt_key(key, "pw", "k", n=1024)
    assert a["crypto"]["ciphertext"] != b["crypto"]["ciphertext"]  # fresh salt and nonce each time
    assert is_encrypted(a) and not is_encrypted({"kind": "ed25519", "version": 1})
    assert key.seed.hex() not in json.dumps(a)
    assert load_key_document(a, "pw").public_hex == key.public_hex
    with pytest.raises(KeyFileError, match="passphrase is needed"):
        load_key_document(a)
    plain = {"kind": "ed25519", "name": "k", "public_key": key.public_hex, "seed": key.seed.hex(), "version": 1}
    assert load_key_document(plain).seed == key.seed
    with pytest.raises(KeyFileError):
        load_key_document({**plain, "public_key": "00" * 32})
    with pytest.raises(KeyFileError):
        load_key_document({**plain, "seed": "zz"})


def test_docs_vector_is_the_first_vector() -> None:
    """docs/console.md's key file example is vector 1, and it opens."""
    import re

    text = (Path(__file__).parents[2] / "docs" / "console.md").read_text()
    block = re.search(r"^```json vector-keyfile\n(.*?)^```", text, re.M | re.S)
    assert block is not None
    doc = json.loads(block.group(1))
    assert doc["document"] == VECTORS[0]["document"] and doc["seed"] == VECTORS[0]["seed"]
    assert decrypt_key(doc["document"], doc["passphrase"]).seed.hex() == doc["seed"]
