"""`careledger demo` leaves one key file per console role: each opens with the CLI's key reader and is
the key the story gave that role."""

from __future__ import annotations

from pathlib import Path

import pytest

from careledger.core.crypto import SigningKey
from careledger.demo.console_keys import ROLES, write_console_keys
from careledger.demo.consortium import ORGANISATIONS
from careledger.keys import read_key
from support import seeded_key

ADMINS = {oid: seeded_key(f"demo-admin/{oid}") for oid, *_ in ORGANISATIONS}


def people(*names: str) -> dict[str, SigningKey]:
    return {name: seeded_key(f"demo/{name}") for name in names}


def test_every_role_gets_its_key_file(tmp_path: Path) -> None:
    met = people(*(who for kind, who in ROLES.values() if kind == "person"))
    written = write_console_keys(met, ADMINS, tmp_path / "console-keys")
    assert sorted(written) == sorted(ROLES)
    for role, path in written.items():
        kind, who = ROLES[role]
        expected = ADMINS[who] if kind == "admin" else met[who]
        assert path == tmp_path / "console-keys" / f"{role}.json"
        assert read_key(path).public_hex == expected.public_hex
        assert path.stat().st_mode & 0o077 == 0  # private to the user, as every key file


def test_a_role_the_story_never_met_is_left_out_and_files_are_never_overwritten(tmp_path: Path) -> None:
    met = people("patient")
    written = write_console_keys(met, ADMINS, tmp_path)
    assert sorted(written) == ["manufacturer", "operator", "patient", "regulator"]
    with pytest.raises(FileExistsError):
        write_console_keys(met, ADMINS, tmp_path)
