"""The demo consortium: eight organisations, one of each kind, with keys in one home's keyring."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from careledger.core.crypto import SigningKey
from careledger.keys import new_key
from careledger.node.home import Home, init_home

ORGANISATIONS: list[tuple[str, str, str, list[str]]] = [
    # (id, name, key name, roles)
    ("st-marys", "St Mary's Hospital", "hospital-admin", ["hospital"]),
    ("riverside-clinic", "Riverside Family Clinic", "clinic-admin", ["clinic"]),
    ("high-street-pharmacy", "High Street Pharmacy", "pharmacy-admin", ["pharmacy"]),
    ("acme-pharma", "Acme Pharmaceuticals", "manufacturer-admin", ["manufacturer"]),
    ("medi-distrib", "MediDistrib Wholesale", "distributor-admin", ["distributor"]),
    ("united-health-ins", "United Health Insurance", "insurer-admin", ["insurer"]),
    ("uni-research", "University Research Institute", "research-admin", ["research"]),
    ("medicines-agency", "National Medicines Agency", "regulator-admin", ["regulator"]),
]
GS1_PREFIXES = {"acme-pharma": ["0614141"]}


@dataclass
class Consortium:
    home: Home
    admins: dict[str, SigningKey]  # org id -> admin key

    def admin(self, org: str) -> SigningKey:
        return self.admins[org]


def genesis_document(chain_id: str, admins: dict[str, SigningKey], validator: SigningKey, time_ms: int,
                     validator_org: str = "st-marys") -> dict[str, Any]:
    return {
        "chain_id": chain_id, "crypto_suite": "ed25519-sha256", "genesis_time_ms": time_ms,
        "organisations": [
            {"admins": [admins[oid].public_hex], "api": None, "gs1_company_prefixes": GS1_PREFIXES.get(oid, []),
             "id": oid, "name": name, "roles": roles}
            for oid, name, _, roles in ORGANISATIONS
        ],
        "validators": [{"org": validator_org, "power": 10, "pub_key": validator.public_hex}],
    }


def create_consortium(path: Path, time_ms: int, chain_id: str = "careledger-demo",
                      api: str = "127.0.0.1:8700") -> Consortium:
    """Make keys for every organisation's admin and the node, write the genesis, and initialise a home."""
    staging = path.parent / f".{path.name}-keys"
    staging.mkdir(parents=True, exist_ok=True)
    admins = {oid: new_key(staging / f"{key_name}.json", key_name) for oid, _, key_name, _ in ORGANISATIONS}
    node_key = new_key(staging / "node.json", "node")
    genesis_path = staging / "genesis.json"
    genesis_path.write_text(json.dumps(genesis_document(chain_id, admins, node_key, time_ms), indent=2))
    home = init_home(path, genesis_path, staging / "node.json", time_ms, chain_id=chain_id, api=api)
    for f in staging.glob("*-admin.json"):
        f.rename(home.keys_dir / f.name)
    for f in staging.iterdir():
        f.unlink()
    staging.rmdir()
    return Consortium(home, admins)
