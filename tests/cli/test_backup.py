"""``careledger backup`` and ``careledger restore`` (issue 16, item 6), against a real node under load.

The issue's fault: copying a running node's home with ``cp -r`` gave a damaged copy in 1 of 3 tries,
and half the bad copies verified as "intact" while being blocks behind. Here the backup is taken
while a real ``careledger node start`` process commits under HTTP load, several times; every backup
must restore (after a full verify) to a ledger whose blocks are exactly the node's blocks up to the
backup's height, and a node started on it must serve that height. A damaged or forged backup is
refused with BACKUP_INVALID and nothing is written to the target home.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from careledger.core.errors import Code
from careledger.node.home import Home
from careledger.vault.store import Vault
from support.cli import run_cli
from support.load import BATCH_ORG, SINGLE_ORG, Load, NodeProcess, Signer, make_home, verify_cli


def blocks_of(db: Path) -> list[tuple[int, bytes, bytes]]:
    conn = sqlite3.connect(db)
    try:
        return [(h, bytes(a), bytes(b)) for h, a, b in
                conn.execute("SELECT height, hash, header FROM blocks ORDER BY height")]
    finally:
        conn.close()


def cli_json(*argv: str | Path) -> tuple[int, Any]:
    result = run_cli(*map(str, argv), "--json")
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A node home with a vault, three backups taken under load, and the node's final blocks."""
    root = tmp_path_factory.mktemp("backup")
    home, consortium = make_home(root / "node", "backup")
    vault = Vault.create(home.path / "vault" / "hospital", "hospital")
    vault.close()
    node = NodeProcess(home.path).start()
    backups: list[Path] = []
    try:
        load = Load(node.url, consortium.chain_id, random.Random(16), Signer(consortium.admin(BATCH_ORG), BATCH_ORG),
                    Signer(consortium.admin(SINGLE_ORG), SINGLE_ORG), batch_size=8).start()
        assert load.first_ack.wait(30), load.errors
        for i in range(3):
            time.sleep(0.4)
            out = root / f"backup-{i}"
            code, manifest = cli_json("backup", "--home", home.path, "--out", out)
            assert code == 0, manifest
            backups.append(out)
        load.stop()
        load.join()
        assert not load.errors, load.errors
        assert node.stop() == 0
    finally:
        node.kill9()
    return {"root": root, "home": home, "consortium": consortium, "backups": backups,
            "blocks": blocks_of(home.db_path), "acked": load.acked}


def test_backups_taken_under_load_restore_to_a_prefix_of_the_chain(backed_up: dict[str, Any]) -> None:
    final = backed_up["blocks"]
    heights = []
    for i, backup in enumerate(backed_up["backups"]):
        manifest = json.loads((backup / "backup.json").read_text())
        heights.append(manifest["height"])
        target = backed_up["root"] / f"restored-{i}"
        code, result = cli_json("restore", "--from", backup, "--home", target,
                                "--keys-from", backed_up["home"].path)
        assert code == 0, result
        assert result["verify"]["ok"] and result["height"] == manifest["height"] > 0
        assert result["keys_missing"] == []
        # exactly the node's blocks up to the backup's height: a snapshot, not a torn copy
        assert blocks_of(Home(target).db_path) == [b for b in final if b[0] <= manifest["height"]]
        code, report = verify_cli(target)
        assert code == 0 and report["ok"] and report["head_record"] == "same", report
    assert heights == sorted(heights) and heights[-1] > heights[0], heights  # the node kept committing meanwhile
    # a node started on the last restore serves that height, and commits on from it
    target = backed_up["root"] / "restored-2"
    node = NodeProcess(target).start()
    try:
        assert node.status()["height"] == heights[-1]
    finally:
        assert node.stop() == 0


def test_keys_are_referenced_not_copied_unless_asked(backed_up: dict[str, Any], tmp_path: Path) -> None:
    backup = backed_up["backups"][0]
    manifest = json.loads((backup / "backup.json").read_text())
    referenced = {k["path"] for k in manifest["keys"]}
    assert {"node_key.json", "vault/hospital/org_key.json", "vault/hospital/gateway_key.json"} <= referenced
    assert all(not (backup / path).exists() for path in referenced)
    assert all(not k["copied"] and len(k["sha256"]) == 64 for k in manifest["keys"])
    kinds = {e["path"]: e["kind"] for e in manifest["files"]}
    assert kinds["data/ledger.sqlite"] == "ledger" and kinds["vault/hospital/vault.sqlite"] == "sqlite"
    assert kinds["config.json"] == kinds["genesis.json"] == "file"
    # restored without its keys: the home is there, the missing keys are named
    code, result = cli_json("restore", "--from", backup, "--home", tmp_path / "keyless")
    assert code == 0 and set(result["keys_missing"]) == referenced, result
    # with --with-keys they are copied, owner-only
    with_keys = tmp_path / "with-keys"
    code, manifest = cli_json("backup", "--home", backed_up["home"].path, "--out", with_keys, "--with-keys")
    assert code == 0 and all(k["copied"] for k in manifest["keys"])
    assert stat.S_IMODE((with_keys / "node_key.json").stat().st_mode) == 0o600
    code, result = cli_json("restore", "--from", with_keys, "--home", tmp_path / "keyed")
    assert code == 0 and result["keys_missing"] == [] and set(result["keys_restored"]) == referenced
    assert stat.S_IMODE((tmp_path / "keyed" / "vault/hospital/org_key.json").stat().st_mode) == 0o600
    # a key file that is not the one backed up is refused
    other = tmp_path / "other-keys"
    shutil.copytree(backed_up["home"].path, other)
    (other / "node_key.json").write_text((other / "vault" / "hospital" / "gateway_key.json").read_text())
    code, result = cli_json("restore", "--from", backup, "--home", tmp_path / "wrong", "--keys-from", other)
    assert code == 1 and result["error"]["code"] == int(Code.BACKUP_INVALID), result


def damaged_copy(backup: Path, where: Path) -> Path:
    copy = where / "damaged"
    shutil.copytree(backup, copy)
    return copy


def assert_refused(source: Path, target: Path, words: str) -> None:
    code, result = cli_json("restore", "--from", source, "--home", target)
    assert code == 1, result
    assert result["error"]["name"] == "BACKUP_INVALID" and words in result["error"]["message"], result
    assert not target.exists(), "a refused restore wrote to the home"


def test_a_damaged_backup_is_refused_and_nothing_is_written(backed_up: dict[str, Any], tmp_path: Path) -> None:
    copy = damaged_copy(backed_up["backups"][1], tmp_path)
    ledger = copy / "data" / "ledger.sqlite"
    data = bytearray(ledger.read_bytes())
    data[len(data) // 2] ^= 0x10
    ledger.write_bytes(bytes(data))
    assert_refused(copy, tmp_path / "target", "differs from the manifest")


def test_a_forged_backup_fails_the_full_verify(backed_up: dict[str, Any], tmp_path: Path) -> None:
    """A forger edits a state row (keeping its row checksum right) and the manifest's SHA-256: the replay
    in the full verify still finds it."""
    from careledger.node.backup import sha256_file
    from careledger.node.store import state_chk

    copy = damaged_copy(backed_up["backups"][1], tmp_path)
    ledger = copy / "data" / "ledger.sqlite"
    conn = sqlite3.connect(ledger, isolation_level=None)
    try:
        key, value = conn.execute("SELECT key, value FROM state WHERE key LIKE 'nonce/%' LIMIT 1").fetchone()
        forged = str(int(value) + 1).encode()
        conn.execute("UPDATE state SET value = ?, chk = ? WHERE key = ?", (forged, state_chk(key, forged), key))
    finally:
        conn.close()
    manifest = json.loads((copy / "backup.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "data/ledger.sqlite":
            entry["bytes"], entry["sha256"] = ledger.stat().st_size, sha256_file(ledger)
    (copy / "backup.json").write_text(json.dumps(manifest))
    assert_refused(copy, tmp_path / "target", "does not verify")


def test_restore_over_an_existing_home_needs_force(backed_up: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "existing"
    shutil.copytree(backed_up["home"].path, target)
    before = (target / "data" / "ledger.sqlite").read_bytes()
    code, result = cli_json("restore", "--from", backed_up["backups"][0], "--home", target)
    assert code == 1 and "--force" in result["error"]["message"], result
    assert (target / "data" / "ledger.sqlite").read_bytes() == before
    code, result = cli_json("restore", "--from", backed_up["backups"][0], "--home", target, "--force")
    assert code == 0, result
    # the home now holds the backup's (older) ledger, with a head record of its height: the node starts
    node = NodeProcess(target).start()
    try:
        assert node.status()["height"] == result["height"] < backed_up["blocks"][-1][0]
    finally:
        assert node.stop() == 0


def test_backup_refuses_a_non_empty_target(backed_up: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    code, result = cli_json("backup", "--home", backed_up["home"].path, "--out", tmp_path / "full")
    assert code == 1 and result["error"]["code"] == int(Code.BACKUP_INVALID), result
