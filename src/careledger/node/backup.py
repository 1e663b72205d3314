"""Backing up and restoring a node home while the node runs (``careledger backup`` / ``careledger restore``).

Copying a running node's files (``cp -r``) races its commits: the copy of ``ledger.sqlite`` and of its
write-ahead log are taken at different moments and may not form any state the node was ever in. A
backup here copies every SQLite database of the home with SQLite's online backup API, which reads
one consistent snapshot while the node keeps committing:

* ``data/ledger.sqlite`` first: the ledger at one height. Its head record is written fresh for that
  height (``data/ledger.head``); the snapshot passes SQLite's ``integrity_check`` and the start-up
  check before the backup is declared complete;
* then every other SQLite database in the home (the custodians' vaults ``vault/<org>/vault.sqlite``,
  indexes), *after* the ledger: a vault may then hold a record whose anchor the ledger snapshot does
  not have yet (as after a crash between the two), never an anchor without its record;
* the other plain files (configuration, genesis) as they are;
* **key files are referenced, not copied** (path, mode and SHA-256 in the manifest), unless
  ``with_keys``: keys belong in a separate, access-controlled place (the HIPAA safe harbour asks for
  keys stored apart from the data). A file is a key file when only its owner may read it (mode
  ``0o600``), when its name ends in ``key.json`` or when it sits in a ``keys/`` directory.

``backup.json`` (the manifest, written last: a backup without one is incomplete) names the chain, the
height, app hash, block hash and state commitment, and every file with its size and SHA-256.

A restore checks every file against the manifest, runs a **full verify** of the backed-up ledger
(SQLite's integrity check, every signature, a replay of every transaction, the state commitment and
the head record) and an integrity check of every other database, and only then copies the files
into the home (each written to a temporary name, flushed, then renamed), with the head record of
the backup's height. Restoring over an existing home needs ``force`` and a stopped node.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from careledger.core.errors import Code, LedgerError
from careledger.node.integrity import check_startup, sqlite_integrity
from careledger.node.store import Store

MANIFEST = "backup.json"
MANIFEST_VERSION = 1
LEDGER = "data/ledger.sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".head")
Progress = Callable[[str], None]


class BackupError(LedgerError):
    default_code = Code.BACKUP_INVALID


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == SQLITE_MAGIC


def is_key_file(path: Path, rel: str) -> bool:
    """Whether a home's file is secret key material (see the module docstring)."""
    mode = path.stat().st_mode
    return stat.S_IMODE(mode) & 0o077 == 0 or path.name.endswith("key.json") or "keys" in Path(rel).parts[:-1]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot_sqlite(src: Path, dst: Path) -> None:
    """One consistent copy of the SQLite database ``src`` (online backup API, in one step), flushed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)  # pages=-1: the whole database under one read transaction
            target.execute("PRAGMA journal_mode=DELETE")  # a backup is one self-contained file
        finally:
            target.close()
    finally:
        source.close()
    _fsync(dst)


def _home_files(home: Path, out: Path) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(home.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if out == path or out in path.parents:
            continue
        rel = path.relative_to(home).as_posix()
        if rel.endswith(SKIPPED_SUFFIXES) or rel.startswith("."):
            continue
        files.append((rel, path))
    return files


def backup_home(home: Path, out: Path, with_keys: bool = False, progress: Progress = lambda s: None) -> dict[str, Any]:
    """Snapshot the node home ``home`` into the new directory ``out`` while its node runs; returns the manifest.

    Raises BackupError (BACKUP_INVALID) when ``out`` exists and is not empty, when ``home`` holds no
    ledger, or when the ledger snapshot fails its checks.
    """
    started = time.perf_counter()
    home, out = home.resolve(), out.resolve()
    if not (home / LEDGER).is_file():
        raise BackupError(f"{home} holds no ledger ({LEDGER})")
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    progress("ledger snapshot")
    snapshot_sqlite(home / LEDGER, out / LEDGER)
    ledger = _check_snapshot(out / LEDGER)
    entries: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for rel, path in _home_files(home, out):
        if rel == LEDGER:
            continue
        target = out / rel
        if is_key_file(path, rel):
            keys.append({"copied": with_keys, "mode": oct(stat.S_IMODE(path.stat().st_mode)), "path": rel,
                         "sha256": sha256_file(path)})
            if not with_keys:
                continue
            kind = "key"
        elif is_sqlite(path):
            progress(f"snapshot of {rel}")
            snapshot_sqlite(path, target)
            problem = _integrity_of(target)
            if problem is not None:
                raise BackupError(f"the snapshot of {rel} is damaged: {problem}")
            kind = "sqlite"
        else:
            kind = "file"
        if kind != "sqlite":
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            _fsync(target)
        entries.append({"bytes": target.stat().st_size, "kind": kind, "path": rel, "sha256": sha256_file(target)})
    head_rel = Path(LEDGER).with_suffix(".head").as_posix()
    for rel in (LEDGER, head_rel):
        entries.append({"bytes": (out / rel).stat().st_size, "kind": "ledger" if rel == LEDGER else "head",
                        "path": rel, "sha256": sha256_file(out / rel)})
    manifest = {"version": MANIFEST_VERSION, "created_ms": int(time.time() * 1000), **ledger,
                "files": sorted(entries, key=lambda e: e["path"]), "keys": keys}
    _write_json(out / MANIFEST, manifest)
    for directory in sorted({(out / e["path"]).parent for e in entries} | {out}, key=lambda p: len(p.parts),
                            reverse=True):
        _fsync(directory)
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    return manifest


def _integrity_of(path: Path) -> str | None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    return None if rows == [("ok",)] else str(rows[0][0])[:200]


def _check_snapshot(db: Path) -> dict[str, Any]:
    """Give the ledger snapshot its head record and check it; returns what the manifest says of it."""
    store = Store(db, create=False)
    try:
        problem = sqlite_integrity(store)
        if problem is not None:
            raise BackupError(f"the ledger snapshot is damaged: {problem}")
        record = store.head_file.write(store.head_record())
        check_startup(store)
        genesis = json.loads(_genesis_json(store))
        return {"app_hash": record.app_hash.hex(), "block_hash": record.block_hash.hex(),
                "chain_id": genesis["chain_id"], "genesis_hash": record.genesis_hash.hex(), "height": record.height,
                "schema": store.schema_version(), "state_count": record.state_count,
                "state_digest": record.state_digest.hex()}
    except LedgerError as exc:
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"the ledger snapshot fails its checks: {exc.message}") from exc
    finally:
        store.close()


def _genesis_json(store: Store) -> str:
    raw = store.get_meta("genesis")
    if raw is None:
        raise BackupError("the ledger snapshot holds no genesis")
    return raw.decode()


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    _fsync(tmp)
    tmp.replace(path)


# -- restore ---------------------------------------------------------------------------------------------------

def read_manifest(source: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{source} has no {MANIFEST}: not a backup, or an incomplete one") from None
    except ValueError as exc:
        raise BackupError(f"{source / MANIFEST} is not JSON: {exc}") from exc
    if doc.get("version") != MANIFEST_VERSION:
        raise BackupError(f"{MANIFEST} has version {doc.get('version')!r}; this release reads {MANIFEST_VERSION}")
    return doc


def check_backup(source: Path, engine: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Check a backup in place: every file against the manifest, a full verify of its ledger (as written
    by ``engine``, default: the backed-up configuration's), an integrity check of every other database.
    Returns the manifest with the verify report under ``verify``; raises BackupError naming the problem."""
    from careledger.node.verify import verify_file

    source = source.resolve()
    manifest = read_manifest(source)
    for entry in manifest["files"]:
        path = source / entry["path"]
        if not path.is_file():
            raise BackupError(f"the backup lacks {entry['path']}")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise BackupError(f"{entry['path']} in the backup differs from the manifest (damaged or altered)")
        if entry["kind"] == "sqlite":
            problem = _integrity_of(path)
            if problem is not None:
                raise BackupError(f"{entry['path']} in the backup is damaged: {problem}")
    if engine is None:
        config = source / "config.json"
        engine = json.loads(config.read_text()).get("engine", "solo") if config.exists() else "solo"
    report = verify_file(source / LEDGER, progress, engine=engine)
    if not report.ok:
        where = "" if report.bad_height is None else f" at height {report.bad_height}"
        raise BackupError(f"the backed-up ledger does not verify{where} ({report.code}): {report.problem}")
    if (report.height, report.app_hash) != (manifest["height"], manifest["app_hash"]):
        raise BackupError(f"the backed-up ledger is at height {report.height}, the manifest says {manifest['height']}")
    return {**manifest, "verify": report.to_json()}


def restore_home(source: Path, home: Path, force: bool = False, keys_from: Path | None = None,
                 progress: Progress = lambda s: None,
                 verify_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Verify the backup at ``source`` in full, then restore it into ``home``; returns what was restored.

    Key files the backup only references are taken from ``keys_from`` (same relative paths, checked
    against their SHA-256) or must already be in ``home``; those found nowhere are listed under
    ``keys_missing``. Raises BackupError when the backup does not verify, when ``home`` already holds a
    home and ``force`` is not given, or when a key file found differs from the one backed up.
    """
    source, home = source.resolve(), home.resolve()
    progress("checking the backup (full verify)")
    checked = check_backup(source, progress=verify_progress)
    if home.exists() and any(home.iterdir()) and not force:
        raise BackupError(f"{home} is not empty; stop its node and pass --force to restore over it")
    home.mkdir(parents=True, exist_ok=True)
    progress("restoring files")
    ledger_db = home / LEDGER
    for suffix in ("-wal", "-shm"):  # a stale log of the old ledger must not be replayed over the new one
        with contextlib.suppress(FileNotFoundError):
            Path(f"{ledger_db}{suffix}").unlink()
    for entry in checked["files"]:
        _install(source / entry["path"], home / entry["path"], secret=entry["kind"] == "key")
    restored_keys, missing = [], []
    for key in checked["keys"]:
        target = home / key["path"]
        if key["copied"]:
            restored_keys.append(key["path"])
            continue
        candidate = (keys_from / key["path"]) if keys_from is not None else None
        if candidate is not None and candidate.is_file():
            if sha256_file(candidate) != key["sha256"]:
                raise BackupError(f"{candidate} is not the key file that was backed up ({key['path']})")
            _install(candidate, target, secret=True)
            restored_keys.append(key["path"])
        elif target.is_file():
            if sha256_file(target) != key["sha256"]:
                raise BackupError(f"{target} is not the key file that was backed up ({key['path']})")
        else:
            missing.append(key["path"])
    _fsync(home)
    # the restored ledger must open as a node opens it (head record of the backup's height)
    store = Store(ledger_db, create=False)
    try:
        head = check_startup(store)
    finally:
        store.close()
    return {"home": str(home), "chain_id": checked["chain_id"], "height": head.height,
            "app_hash": head.app_hash.hex(), "files": len(checked["files"]), "keys_restored": restored_keys,
            "keys_missing": missing, "verify": checked["verify"]}


def _install(src: Path, dst: Path, secret: bool) -> None:
    """Copy ``src`` to ``dst`` atomically: a temporary name, flushed, renamed, directory flushed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.restoring")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o600 if secret else 0o644)
    _fsync(tmp)
    tmp.replace(dst)
    _fsync(dst.parent)

