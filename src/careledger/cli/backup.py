"""``careledger backup`` and ``careledger restore``: a consistent online snapshot of a node home, and a
restore that verifies the snapshot in full before using it (:mod:`careledger.node.backup`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from careledger.cli.common import HomeOption, activity, emit, expand, note, print_table, progress, say


def backup(
    out: Annotated[Path, typer.Option("--out", help="New (or empty) directory to write the backup into.")],
    home: Path = HomeOption,
    with_keys: Annotated[bool, typer.Option("--with-keys", help="Copy the key files too (by default they are only "
                                                                "referenced, by path and SHA-256).")] = False,
) -> None:
    """Snapshot a node home while its node runs: the ledger at one height, the vaults, the configuration.

    Key files are referenced, not copied, unless --with-keys. The backup's backup.json names the
    height, app hash and every file with its SHA-256.
    """
    from careledger.node.backup import backup_home

    with activity("backup") as update:
        manifest = backup_home(expand(home), expand(out), with_keys=with_keys, progress=update)

    def human() -> None:
        say(f"[green]backed up[/] {expand(home)} to {expand(out)}: chain {manifest['chain_id']} at height "
            f"{manifest['height']} (app hash {manifest['app_hash']}), {len(manifest['files'])} files "
            f"in {manifest['seconds']:.2f} s")
        referenced = [k["path"] for k in manifest["keys"] if not k["copied"]]
        if referenced:
            note(f"key files referenced, not copied (keep them safe elsewhere): {', '.join(referenced)}")

    emit(manifest, human)


def restore(
    source: Annotated[Path, typer.Option("--from", help="The backup directory (written by careledger backup).")],
    home: Path = HomeOption,
    force: Annotated[bool, typer.Option("--force", help="Restore over an existing home (stop its node first).")]
    = False,
    keys_from: Annotated[Path | None, typer.Option(help="Directory holding the referenced key files at the same "
                                                        "relative paths (checked against their SHA-256).")] = None,
) -> None:
    """Verify a backup in full (files, SQLite integrity, every block, a replay of every transaction), then
    restore it into a home. Nothing is written to the home unless the backup verifies."""
    from careledger.node.backup import restore_home

    with activity("restore") as update, progress("verifying the backup") as bar:
        result = restore_home(expand(source), expand(home), force=force,
                              keys_from=expand(keys_from) if keys_from else None, progress=update,
                              verify_progress=bar)

    def human() -> None:
        say(f"[green]restored[/] {result['home']}: chain {result['chain_id']} at height {result['height']} "
            f"(app hash {result['app_hash']}), backup verified ({result['verify']['txs']} transactions replayed)")
        if result["keys_missing"]:
            print_table(["key file still missing (copy it into the home before starting the node)"],
                        [[k] for k in result["keys_missing"]])

    emit(result, human)
