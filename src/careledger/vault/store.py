"""The custodian's vault: FHIR resources encrypted at rest in one SQLite file per organisation.

Layout under a node home::

    HOME/vault/<org>/org_key.json      the organisation key (AES-256), mode 0600; never on the ledger
    HOME/vault/<org>/gateway_key.json  the gateway's Ed25519 key (a ``data_steward`` member of <org>):
                                       signs anchors and audit entries
    HOME/vault/<org>/vault.sqlite      records and the request replay cache

Each record version is sealed with a fresh 256-bit data key::

    plaintext  = salt (32 bytes) ‖ canonical resource bytes
    aad        = "CareLedger/vault/v1" 0x00 ‖ canonical {"custodian", "record", "version"}
    ciphertext = AES-256-GCM(data key, 96-bit random nonce, plaintext, aad)
    wrapped    = AES key wrap (RFC 3394) of the data key under the organisation key

Opening checks the key wrap and the GCM tag; any failure (a flipped byte, a row moved to another
record or version, another organisation's key) is :class:`VaultIntegrityError` (VAULT_INTEGRITY)
and nothing is returned. Erasure (crypto-shredding) deletes the wrapped key, the nonce, the salt
and the ciphertext with ``PRAGMA secure_delete=ON`` (freed bytes are overwritten with zeros) and then
truncates the write-ahead log, so no file of the home keeps them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from careledger.core import codec
from careledger.core.crypto import SigningKey, sha256
from careledger.core.errors import Code, LedgerError
from careledger.keys import new_key, read_key
from careledger.vault.canonical import SALT_BYTES, compute_commitment

KEY_BYTES = 32
NONCE_BYTES = 12
AAD_TAG = b"CareLedger/vault/v1\x00"
ORG_KEY_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record TEXT NOT NULL, version INTEGER NOT NULL, pseudonym TEXT NOT NULL, type TEXT NOT NULL,
    commitment TEXT NOT NULL, wrapped_key BLOB NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL,
    state TEXT NOT NULL, PRIMARY KEY (record, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (hash BLOB PRIMARY KEY, expires_ms INTEGER NOT NULL) WITHOUT ROWID;
"""


class VaultIntegrityError(LedgerError):
    default_code = Code.VAULT_INTEGRITY


class VaultError(LedgerError):
    default_code = Code.VAULT_NOT_HOSTED


@dataclass(frozen=True)
class OrgKey:
    """The organisation's AES-256 key-wrapping key. ``key_id`` names it without revealing it."""

    org: str
    key: bytes

    @property
    def key_id(self) -> str:
        return sha256(b"CareLedger/org-key-id\x00" + self.key).hex()[:16]

    def __repr__(self) -> str:
        return f"OrgKey(org={self.org!r}, key_id={self.key_id})"


def write_org_key(path: Path, org: str) -> OrgKey:
    key = OrgKey(org, os.urandom(KEY_BYTES))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"kind": "aes-256", "key": key.key.hex(), "key_id": key.key_id, "org": org,
                   "version": ORG_KEY_VERSION}, fh, indent=2)
        fh.write("\n")
    return key


def read_org_key(path: Path) -> OrgKey:
    try:
        doc = json.loads(path.read_text())
        key = OrgKey(str(doc["org"]), bytes.fromhex(doc["key"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VaultError(f"{path} is not an organisation key file", Code.VAULT_INTEGRITY) from exc
    if doc.get("version") != ORG_KEY_VERSION or len(key.key) != KEY_BYTES or doc.get("key_id") != key.key_id:
        raise VaultError(f"{path}: organisation key file is damaged", Code.VAULT_INTEGRITY)
    return key


@dataclass(frozen=True)
class Sealed:
    """A record version ready to store: ``commitment`` goes on the ledger, the rest stays here."""

    record: str
    version: int
    pseudonym: str
    type: str
    commitment: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes


def aad_of(custodian: str, record: str, version: int) -> bytes:
    return AAD_TAG + codec.encode({"custodian": custodian, "record": record, "version": version})


def new_record_id() -> str:
    """A fresh record id: ``r-`` + 32 random hex digits (no meaning, nothing derived from content)."""
    return "r-" + os.urandom(16).hex()


class Vault:
    """One organisation's vault. Thread-safe (one connection behind a lock)."""

    def __init__(self, directory: Path, org: str | None = None) -> None:
        self.directory = directory
        self.org_key = read_org_key(directory / "org_key.json")
        self.org = self.org_key.org
        if org is not None and org != self.org:
            raise VaultError(f"{directory} holds the vault of {self.org!r}, not {org!r}")
        self.gateway_key: SigningKey = read_key(directory / "gateway_key.json")
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(directory / "vault.sqlite", check_same_thread=False, isolation_level=None,
                                     timeout=30)
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)

    @classmethod
    def create(cls, directory: Path, org: str) -> Vault:
        """Create a vault for ``org``: organisation key, gateway key and database. Refuses to overwrite."""
        if (directory / "org_key.json").exists():
            raise VaultError(f"{directory} already holds a vault", Code.ALREADY_EXISTS)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        write_org_key(directory / "org_key.json", org)
        new_key(directory / "gateway_key.json", f"{org}-gateway")
        return cls(directory, org)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- sealing --------------------------------------------------------------------------------------------
    def seal(self, record: str, version: int, pseudonym: str, rtype: str, canonical: bytes) -> Sealed:
        """Encrypt one record version under a fresh data key and salt (nothing is written yet)."""
        salt = os.urandom(SALT_BYTES)
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, salt + canonical, aad_of(self.org, record, version))
        return Sealed(record, version, pseudonym, rtype, compute_commitment(salt, canonical),
                      aes_key_wrap(self.org_key.key, data_key), nonce, ciphertext)

    def put_pending(self, items: list[Sealed]) -> None:
        """Store sealed versions (state ``pending`` until their anchors commit), all in one transaction."""
        rows = [(s.record, s.version, s.pseudonym, s.type, s.commitment, s.wrapped_key, s.nonce, s.ciphertext,
                 "pending") for s in items]
        with self._lock:
            self._in_transaction(
                lambda: self._conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows))

    def mark_anchored(self, keys: list[tuple[str, int]]) -> None:
        """Mark versions anchored, all in one SQLite transaction (one sync, not one per row)."""
        with self._lock:
            self._in_transaction(
                lambda: self._conn.executemany("UPDATE records SET state = 'anchored' WHERE record = ? AND "
                                               "version = ?", keys))

    def discard(self, keys: list[tuple[str, int]]) -> None:
        """Destroy versions whose anchors did not commit."""
        with self._lock:
            self._in_transaction(
                lambda: self._conn.executemany("DELETE FROM records WHERE record = ? AND version = ?", keys))
            self._truncate_wal()

    def _in_transaction(self, work: Callable[[], object]) -> None:
        """Run ``work`` in one write transaction (the connection is in autocommit mode); the lock is held."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            work()
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    # -- reading --------------------------------------------------------------------------------------------
    def open(self, record: str, version: int) -> tuple[bytes, bytes]:
        """``(salt, canonical bytes)`` of a version. Raises RECORD_UNKNOWN or VAULT_INTEGRITY."""
        with self._lock:
            row = self._conn.execute("SELECT wrapped_key, nonce, ciphertext FROM records WHERE record = ? AND "
                                     "version = ?", (record, version)).fetchone()
        if row is None:
            raise LedgerError(f"the vault holds no version {version} of {record}", Code.RECORD_UNKNOWN)
        wrapped, nonce, ciphertext = (bytes(x) for x in row)
        try:
            data_key = aes_key_unwrap(self.org_key.key, wrapped)
            plaintext = AESGCM(data_key).decrypt(nonce, ciphertext, aad_of(self.org, record, version))
        except (InvalidUnwrap, InvalidTag, ValueError) as exc:
            raise VaultIntegrityError(f"record {record} version {version} fails its integrity check") from exc
        if len(plaintext) <= SALT_BYTES:
            raise VaultIntegrityError(f"record {record} version {version} is truncated")
        return plaintext[:SALT_BYTES], plaintext[SALT_BYTES:]

    def latest_version(self, record: str) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT max(version) FROM records WHERE record = ?", (record,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def record_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT DISTINCT record FROM records ORDER BY record")]

    def pending(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(r, int(v)) for r, v in self._conn.execute(
                "SELECT record, version FROM records WHERE state = 'pending'")]

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM records").fetchone()[0])

    # -- erasure --------------------------------------------------------------------------------------------
    def versions_held(self, record: str) -> int:
        """How many versions of ``record`` this vault holds (stored or pending)."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM records WHERE record = ?", (record,)).fetchone()[0])

    def erase(self, record: str) -> int:
        """Crypto-shred every version of ``record``: key, salt and ciphertext. Returns versions destroyed."""
        with self._lock:
            n = self._conn.execute("DELETE FROM records WHERE record = ?", (record,)).rowcount
            self._truncate_wal()
        return int(n)

    def _truncate_wal(self) -> None:
        """Checkpoint and truncate the WAL so that no old page image of a deleted row survives in it."""
        for _ in range(50):
            busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            threading.Event().wait(0.02)
        raise VaultError("the vault's write-ahead log could not be truncated", Code.INTERNAL_ERROR)

    # -- request replay cache -------------------------------------------------------------------------------
    def remember_request(self, request_hash: bytes, expires_ms: int, now_ms: int) -> bool:
        """Record a request hash; False when it was already seen (a replay). Forgets expired ones."""
        with self._lock:
            cur = self._conn.execute("INSERT OR IGNORE INTO requests VALUES (?, ?)", (request_hash, expires_ms))
            if cur.rowcount and os.urandom(1)[0] < 4:  # now and then, forget requests past their window
                self._conn.execute("DELETE FROM requests WHERE expires_ms < ?", (now_ms,))
            return bool(cur.rowcount)
