"""The consortium ceremony, as organisations on separate machines run it (here: separate directories
on one machine, peers on loopback), through the CLI: three organisations join, a coordinator
assembles the genesis from one short consortium file (one validator key pasted as `cometbft
show-validator` prints it), everyone verifies the announced hash (a wrong hash or a tampered file
stops them), sets up and starts its node; transactions commit on the three. The same file makes an
embedded multi-organisation node.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.core.crypto import SigningKey
from careledger.keys import read_key
from careledger.net.ceremony import CeremonyError, public_key_hex
from careledger.net.cluster import LocalNetwork, free_base_port
from careledger.net.layout import NetworkSpec, NodeSpec
from careledger.node.home import Home
from support import require_cometbft
from support.cli import run_cli

pytestmark = pytest.mark.cometbft

ORGS = [("hospital-a", "St Mary's Hospital", "hospital"), ("insurer-b", "Mutual Health Insurer", "insurer"),
        ("pharmacy-c", "Corner Pharmacy", "pharmacy")]


def cli(*argv: str) -> dict[str, Any]:
    out = run_cli("--json", *argv)
    assert out.exit_code == 0, out.output
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def write_consortium_file(root: Path, regulator: SigningKey, pasted_validator: str) -> Path:
    path = root / "coordinator" / "consortium.toml"
    path.parent.mkdir(parents=True)
    path.write_text(f'''chain_id = "careledger-ceremony"
genesis_time = "2026-01-05T09:00:00Z"

[[organisation]]
id = "hospital-a"
name = "St Mary's Hospital"
roles = ["hospital"]
api = "https://hospital-a.example/api"
join = "../hospital-a/join-hospital-a.json"

[[organisation]]
id = "insurer-b"
name = "Mutual Health Insurer"
roles = ["insurer"]
join = "../insurer-b/join-insurer-b.json"

[[organisation]]
id = "pharmacy-c"
name = "Corner Pharmacy"
roles = ["pharmacy"]
gs1_prefixes = ["0614141"]
join = "../pharmacy-c/join-pharmacy-c.json"
validator_key = '{pasted_validator}'

[[organisation]]
id = "regulator"
name = "Health Regulator"
roles = ["regulator"]
admins = ["{regulator.public_hex}"]
''')
    return path


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    binary = require_cometbft()
    root = tmp_path_factory.mktemp("ceremony")
    base = free_base_port(3)
    joins = {}
    for k, (org, _, _) in enumerate(ORGS):
        joins[org] = cli("consortium", "join", "--home", str(root / org), "--org", org,
                         "--p2p", f"127.0.0.1:{base + 10 * k}")
    shown = subprocess.run([str(binary), "show-validator", "--home", str(root / "pharmacy-c" / "cometbft")],
                           capture_output=True, text=True, check=True).stdout.strip()
    regulator = SigningKey.generate()
    path = write_consortium_file(root, regulator, shown)
    announced = cli("consortium", "genesis", "--file", str(path), "--out", str(root / "genesis"))
    yield {"root": root, "base": base, "joins": joins, "announced": announced, "shown": shown,
           "regulator": regulator, "file": path}


def test_join_files_hold_public_halves_only_and_keys_in_hex(ceremony: dict[str, Any]) -> None:
    root = ceremony["root"]
    for org, _, _ in ORGS:
        doc = json.loads((root / org / f"join-{org}.json").read_text())
        assert set(doc) == {"admins", "node_id", "org", "p2p", "validator", "version"}
        assert doc["admins"] == [read_key(root / org / "careledger" / "keys" / "admin.json").public_hex]
        assert len(doc["validator"]) == 64 and len(doc["node_id"]) == 40
        text = (root / org / f"join-{org}.json").read_text()
        assert "priv" not in text and "seed" not in text
    # the pasted `cometbft show-validator` output became the same hex key
    assert public_key_hex(ceremony["shown"]) == ceremony["joins"]["pharmacy-c"]["validator"]
    for bad in ("xyz", "00" * 31, '{"type": "tendermint/PubKeySecp256k1", "value": "AA=="}'):
        with pytest.raises(CeremonyError):
            public_key_hex(bad)


def test_genesis_declares_every_organisation_and_its_hash_is_the_files(ceremony: dict[str, Any]) -> None:
    out = ceremony["root"] / "genesis"
    announced = ceremony["announced"]
    assert announced["genesis_hash"] == hashlib.sha256((out / "cometbft-genesis.json").read_bytes()).hexdigest()
    genesis = json.loads((out / "genesis.json").read_text())
    assert [o["id"] for o in genesis["organisations"]] == ["hospital-a", "insurer-b", "pharmacy-c", "regulator"]
    by_id = {o["id"]: o for o in genesis["organisations"]}
    assert by_id["pharmacy-c"]["gs1_company_prefixes"] == ["0614141"]
    assert by_id["regulator"]["admins"] == [ceremony["regulator"].public_hex]
    assert [v["org"] for v in genesis["validators"]] == ["hospital-a", "insurer-b", "pharmacy-c"]
    assert genesis["genesis_time_ms"] == 1_767_603_600_000
    peers = json.loads((out / "peers.json").read_text())
    assert sorted(peers) == ["hospital-a", "insurer-b", "pharmacy-c"]
    # the coordinator's run is reproducible: the same file gives the same hash
    again = cli("consortium", "genesis", "--file", str(ceremony["file"]), "--out", str(ceremony["root"] / "again"))
    assert again["genesis_hash"] == announced["genesis_hash"]


def test_verify_stops_an_organisation_on_a_wrong_hash_a_tampered_file_or_a_missing_key(
        ceremony: dict[str, Any], tmp_path: Path) -> None:
    root, announced = ceremony["root"], ceremony["announced"]
    ok = cli("consortium", "verify", "--dir", str(root / "genesis"), "--expect", announced["genesis_hash"],
             "--home", str(root / "insurer-b"))
    assert ok["verified"] and ok["member"]["org"] == "insurer-b" and ok["member"]["validator"]
    wrong = run_cli("consortium", "verify", "--dir", str(root / "genesis"), "--expect", "ab" * 32)
    assert wrong.exit_code == 4 and "INVALID_GENESIS" in wrong.stderr and "do not start" in wrong.stderr
    # a tampered CareLedger genesis no longer matches CometBFT's app_state
    copy = tmp_path / "tampered"
    copy.mkdir()
    for name in ("genesis.json", "cometbft-genesis.json", "peers.json"):
        (copy / name).write_bytes((root / "genesis" / name).read_bytes())
    doc = json.loads((copy / "genesis.json").read_text())
    doc["organisations"][3]["roles"] = ["hospital"]
    (copy / "genesis.json").write_text(json.dumps(doc))
    tampered = run_cli("consortium", "verify", "--dir", str(copy), "--expect", announced["genesis_hash"])
    assert tampered.exit_code == 1 and "differs from the app_state" in tampered.stderr
    # an organisation left out of the genesis learns it before starting
    outsider = tmp_path / "outsider"
    cli("consortium", "join", "--home", str(outsider), "--org", "clinic-z", "--p2p", "127.0.0.1:1")
    missing = run_cli("consortium", "verify", "--dir", str(root / "genesis"), "--expect", announced["genesis_hash"],
                      "--home", str(outsider))
    assert missing.exit_code == 1 and "is not in the genesis" in missing.stderr


def test_each_organisation_sets_up_and_the_network_commits(ceremony: dict[str, Any]) -> None:
    root, base, announced = ceremony["root"], ceremony["base"], ceremony["announced"]
    nodes = []
    for k, (org, _, _) in enumerate(ORGS):
        port = base + 10 * k
        cli("consortium", "setup", "--home", str(root / org), "--dir", str(root / "genesis"),
            "--expect", announced["genesis_hash"], "--rpc", f"127.0.0.1:{port + 1}", "--api", f"127.0.0.1:{port + 3}",
            "--metrics", f"127.0.0.1:{port + 4}", "--p2p-listen", "127.0.0.1", "--local")
        nodes.append(NodeSpec(**json.loads((root / org / "node.json").read_text())))
        assert nodes[-1].abci.startswith("unix://")
    net = LocalNetwork(NetworkSpec(root, "careledger-ceremony", nodes))
    try:
        net.start()
        net.wait_api(timeout=90)
        results = [net.client(i).send(SigningKey.generate(), "identity.register_patient", 1, {}, wait=True)
                   for i in range(3)]
        assert all(r["receipt"]["code"] == 0 for r in results)
        net.wait("every node to hold the three registrations",
                 lambda: all(all(r["tx_hash"] in net.ledger_txs(i) for r in results) for i in range(3)))
        statuses = [net.client(i).status() for i in range(3)]
        assert {s["genesis_hash"] for s in statuses} == {announced["careledger_genesis_hash"]}
        metrics = httpx.get(nodes[0].metrics_url, timeout=5).text
        assert "cometbft_consensus_height" in metrics
        # the organisation's admin (its key from `join`) acts in its own name
        admin = read_key(root / "pharmacy-c" / "careledger" / "keys" / "admin.json")
        member = SigningKey.generate()
        enrolled = net.client(2).send(admin, "identity.enrol_member", 1, {
            "member": member.public_hex, "org": "pharmacy-c", "roles": ["pharmacist"]}, wait=True)
        assert enrolled["receipt"]["code"] == 0, enrolled
    finally:
        net.stop()


def test_the_same_file_makes_an_embedded_multi_organisation_node(ceremony: dict[str, Any], tmp_path: Path) -> None:
    home = tmp_path / "embedded"
    doc = cli("consortium", "embedded", "--file", str(ceremony["file"]), "--home", str(home))
    assert sorted(doc["keys"]) == ["hospital-a", "insurer-b", "pharmacy-c", "regulator"]
    h = Home(home)
    genesis = h.genesis()
    assert [o.id for o in genesis.organisations] == ["hospital-a", "insurer-b", "pharmacy-c", "regulator"]
    assert next(o for o in genesis.organisations if o.id == "pharmacy-c").gs1_company_prefixes == ["0614141"]
    for org in genesis.organisations:
        assert org.admins == [read_key(home / "keys" / f"{org.id}.json").public_hex]
    assert [v.pub_key for v in genesis.validators] == [h.node_key().public_hex]
    assert genesis.chain_id == "careledger-ceremony" and genesis.genesis_time_ms == 1_767_603_600_000
    again = run_cli("consortium", "embedded", "--file", str(ceremony["file"]), "--home", str(home))
    assert again.exit_code == 1 and "not empty" in again.stderr
