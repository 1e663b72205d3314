"""The genesis file: valid declarations parse to a stable hash; every invalid one is INVALID_GENESIS."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from careledger.core import codec
from careledger.core.errors import Code, GenesisError
from careledger.core.genesis import Genesis, Params, parse_genesis
from careledger.node.home import load_genesis
from support import Consortium, make_consortium, seeded_key


def test_valid_genesis(consortium: Consortium) -> None:
    genesis = consortium.genesis
    assert genesis.chain_id == "careledger-test"
    assert [o.id for o in genesis.organisations] == list(consortium.org_ids)
    assert genesis.params == Params()
    assert genesis.params.max_tx_bytes == 262_144 and genesis.params.proposal_ttl_blocks == 100_000
    assert genesis.hash == hashlib.sha256(codec.encode(genesis.to_json())).digest()
    assert genesis.encode() == codec.encode(genesis.to_json())
    # defaults are written out, so the hash covers them
    assert genesis.to_json()["params"] == Params().model_dump()
    assert genesis.to_json()["organisations"][0]["gs1_company_prefixes"] == []
    assert parse_genesis(genesis.to_json()) == genesis


def test_hash_ignores_file_layout_but_not_content(tmp_path: Path, consortium: Consortium) -> None:
    pretty = consortium.write_genesis(tmp_path / "pretty.json")
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(dict(reversed(list(consortium.doc.items())))))
    assert load_genesis(pretty).hash == load_genesis(compact).hash == consortium.genesis.hash
    changed = copy.deepcopy(consortium.doc)
    changed["genesis_time_ms"] += 1
    assert parse_genesis(changed).hash != consortium.genesis.hash
    changed = copy.deepcopy(consortium.doc)
    changed["organisations"][0]["name"] = "Renamed"
    assert parse_genesis(changed).hash != consortium.genesis.hash


def test_genesis_hash_known_answer() -> None:
    key = seeded_key("genesis/kat")
    doc = {"chain_id": "kat", "genesis_time_ms": 0,
           "organisations": [{"admins": [key.public_hex], "id": "org1", "name": "Org", "roles": ["clinic"]}],
           "validators": [{"org": "org1", "power": 1, "pub_key": key.public_hex}]}
    genesis = parse_genesis(doc)
    expected = (
        '{"chain_id":"kat","crypto_suite":"ed25519-sha256","genesis_time_ms":0,"organisations":[{"admins":["'
        + key.public_hex + '"],"api":null,"gs1_company_prefixes":[],"id":"org1","name":"Org","roles":["clinic"]}],'
        '"params":{"max_block_txs":5000,"max_roles":8,"max_tx_bytes":262144,"proposal_ttl_blocks":100000},'
        '"validators":[{"org":"org1","power":1,"pub_key":"' + key.public_hex + '"}]}'
    )
    assert genesis.encode() == expected.encode()
    assert genesis.hash == hashlib.sha256(expected.encode()).digest()


# -- invalid documents -------------------------------------------------------------------------------

Edit = Callable[[dict[str, Any]], None]
OTHER = seeded_key("genesis/other").public_hex


def _del(*path: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for p in path[:-1]:
            target = target[p]
        del target[path[-1]]
    return edit


def _set(value: Any, *path: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value
    return edit


def _dup_org(doc: dict[str, Any]) -> None:
    org = copy.deepcopy(doc["organisations"][1])
    org["admins"] = [OTHER]
    org["id"] = doc["organisations"][0]["id"]
    doc["organisations"].append(org)


def _dup_admin_across_orgs(doc: dict[str, Any]) -> None:
    doc["organisations"][1]["admins"] = [doc["organisations"][0]["admins"][0]]


def _dup_validator(doc: dict[str, Any]) -> None:
    doc["validators"].append(dict(doc["validators"][0]))


INVALID: list[tuple[str, Edit]] = [
    ("missing chain_id", _del("chain_id")),
    ("missing genesis_time_ms", _del("genesis_time_ms")),
    ("missing organisations", _del("organisations")),
    ("missing validators", _del("validators")),
    ("missing org name", _del("organisations", 0, "name")),
    ("missing org admins", _del("organisations", 0, "admins")),
    ("missing org roles", _del("organisations", 2, "roles")),
    ("missing validator power", _del("validators", 0, "power")),
    ("unknown top-level field", _set(1, "extra")),
    ("unknown org field", _set("x", "organisations", 0, "address")),
    ("unknown params field", _set({"max_block_gas": 5}, "params")),
    ("empty organisations", _set([], "organisations")),
    ("empty validators", _set([], "validators")),
    ("duplicate org ids", _dup_org),
    ("unknown org role", _set(["spa"], "organisations", 0, "roles")),
    ("role repeated", _set(["clinic", "clinic"], "organisations", 1, "roles")),
    ("no roles", _set([], "organisations", 1, "roles")),
    ("admin key upper-case hex", _set([OTHER.upper()], "organisations", 0, "admins")),
    ("admin key short", _set([OTHER[:62]], "organisations", 0, "admins")),
    ("admin key not hex", _set(["zz" * 32], "organisations", 0, "admins")),
    ("admin repeated in org", _set([OTHER, OTHER], "organisations", 0, "admins")),
    ("no admins", _set([], "organisations", 0, "admins")),
    ("duplicate admin across orgs", _dup_admin_across_orgs),
    ("validator key not hex", _set("x" * 64, "validators", 0, "pub_key")),
    ("validator names unknown org", _set("nosuch", "validators", 0, "org")),
    ("duplicate validator", _dup_validator),
    ("validator power 0", _set(0, "validators", 0, "power")),
    ("validator power float", _set(10.0, "validators", 0, "power")),
    ("validator power string", _set("10", "validators", 0, "power")),
    ("validator power bool", _set(True, "validators", 0, "power")),
    ("genesis time float", _set(1.5, "genesis_time_ms")),
    ("genesis time negative", _set(-1, "genesis_time_ms")),
    ("chain id upper case", _set("CareLedger", "chain_id")),
    ("chain id empty", _set("", "chain_id")),
    ("chain id not a string", _set(5, "chain_id")),
    ("unknown crypto suite", _set("sm2-sm3", "crypto_suite")),
    ("max_tx_bytes too small", _set({"max_tx_bytes": 100}, "params")),
    ("ttl zero", _set({"proposal_ttl_blocks": 0}, "params")),
    ("org id with upper case", _set("Hospital", "organisations", 0, "id")),
    ("api not a url", _set("hospital.example", "organisations", 0, "api")),
    ("gs1 prefix too short", _set(["123"], "organisations", 0, "gs1_company_prefixes")),
]


@pytest.mark.parametrize(("name", "edit"), INVALID, ids=[n for n, _ in INVALID])
def test_invalid_genesis_document(consortium: Consortium, name: str, edit: Edit) -> None:
    doc = copy.deepcopy(consortium.doc)
    edit(doc)
    with pytest.raises(GenesisError) as err:
        parse_genesis(doc)
    assert err.value.code == Code.INVALID_GENESIS


@pytest.mark.parametrize(("name", "edit"), INVALID, ids=[n for n, _ in INVALID])
def test_invalid_genesis_file(tmp_path: Path, consortium: Consortium, name: str, edit: Edit) -> None:
    doc = copy.deepcopy(consortium.doc)
    edit(doc)
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(GenesisError) as err:
        load_genesis(path)
    assert err.value.code == Code.INVALID_GENESIS


@pytest.mark.parametrize("content", [
    b"", b"{", b"not json", b"[]", b"null", b'"genesis"', b"\xff\xfe{}",
    b'{"chain_id": "x", "chain_id": "y"}',  # duplicate key
    b'{"genesis_time_ms": NaN}', b'{"genesis_time_ms": Infinity}', b'{"genesis_time_ms": 1e3}',
    b'{"genesis_time_ms": 9007199254740993}',
])
def test_unparseable_genesis_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "genesis.json"
    path.write_bytes(content)
    with pytest.raises(GenesisError) as err:
        load_genesis(path)
    assert err.value.code == Code.INVALID_GENESIS


def test_float_anywhere_in_the_file_is_refused(tmp_path: Path, consortium: Consortium) -> None:
    text = json.dumps(consortium.doc).replace('"power": 10', '"power": 10.0')
    assert "10.0" in text
    path = tmp_path / "genesis.json"
    path.write_text(text)
    with pytest.raises(GenesisError):
        load_genesis(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GenesisError) as err:
        load_genesis(tmp_path / "nope.json")
    assert err.value.code == Code.INVALID_GENESIS


def test_not_an_object() -> None:
    doc: object
    for doc in ([], None, "x", 5):
        with pytest.raises(GenesisError):
            parse_genesis(doc)


def test_error_names_the_field(consortium: Consortium) -> None:
    doc = copy.deepcopy(consortium.doc)
    doc["validators"][0]["org"] = "nosuch"
    with pytest.raises(GenesisError) as err:
        parse_genesis(doc)
    assert "nosuch" in err.value.message
    doc = copy.deepcopy(consortium.doc)
    doc["organisations"][3]["roles"] = ["spa"]
    with pytest.raises(GenesisError) as err:
        parse_genesis(doc)
    assert "organisations.3.roles" in err.value.message


def test_genesis_is_immutable(consortium: Consortium) -> None:
    genesis: Genesis = consortium.genesis
    with pytest.raises(ValidationError):
        genesis.chain_id = "other"
    assert genesis.chain_id == "careledger-test"


def test_small_consortium_helper() -> None:
    c = make_consortium(("a1", "b2"), ("hospital", "regulator"), chain_id="mini")
    assert c.genesis.chain_id == "mini" and [o.roles for o in c.genesis.organisations] == [["hospital"],
                                                                                           ["regulator"]]
