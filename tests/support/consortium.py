"""A deterministic consortium for tests: reproducible keys and a genesis with one organisation per role."""


from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from careledger.chain.executor import (
    Chain,
)
from careledger.chain.registry import default_registry
from careledger.core.crypto import SigningKey
from careledger.core.genesis import Genesis, parse_genesis

CHAIN_ID = "careledger-test"
GENESIS_TIME_MS = 1_700_000_000_000
BLOCK_INTERVAL_MS = 1_000
ORG_ROLES = ("hospital", "clinic", "pharmacy", "manufacturer", "distributor", "insurer", "research", "regulator")


def seeded_key(label: str) -> SigningKey:
    """A reproducible Ed25519 key: its seed is SHA-256 of ``careledger-test/<label>``."""
    return SigningKey(hashlib.sha256(b"careledger-test/" + label.encode()).digest())


@dataclass
class Consortium:
    """A genesis document plus the private keys of every organisation admin and of the validator."""

    doc: dict[str, Any]
    admins: dict[str, SigningKey]
    validator: SigningKey

    @property
    def genesis(self) -> Genesis:
        return parse_genesis(self.doc)

    @property
    def chain_id(self) -> str:
        return str(self.doc["chain_id"])

    @property
    def org_ids(self) -> list[str]:
        return [o["id"] for o in self.doc["organisations"]]

    @property
    def genesis_time_ms(self) -> int:
        return int(self.doc["genesis_time_ms"])

    def admin(self, org: str) -> SigningKey:
        return self.admins[org]

    def chain(self) -> Chain:
        return Chain(self.genesis, default_registry())

    def write_genesis(self, path: Path) -> Path:
        path.write_text(json.dumps(self.doc, indent=2, sort_keys=True) + "\n")
        return path


def make_consortium(org_ids: tuple[str, ...] = ORG_ROLES, roles: tuple[str, ...] | None = None,
                    chain_id: str = CHAIN_ID, label: str = "", params: dict[str, Any] | None = None) -> Consortium:
    """One organisation per id with the role of the same position in ``roles`` (default: id == role)."""
    roles = roles or org_ids
    admins = {org: seeded_key(f"{label}admin/{org}") for org in org_ids}
    validator = seeded_key(f"{label}validator/0")
    doc: dict[str, Any] = {
        "chain_id": chain_id, "crypto_suite": "ed25519-sha256", "genesis_time_ms": GENESIS_TIME_MS,
        "organisations": [{"admins": [admins[org].public_hex], "api": None, "id": org,
                           "name": f"{org.title()} organisation", "roles": [role]}
                          for org, role in zip(org_ids, roles, strict=True)],
        "validators": [{"org": org_ids[0], "power": 10, "pub_key": validator.public_hex}],
    }
    if params:
        doc["params"] = params
    return Consortium(doc, admins, validator)


