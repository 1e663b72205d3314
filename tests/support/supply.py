"""The supply world for contract tests: a consortium with GS1 prefixes, a product, and helpers to drive packs."""

from __future__ import annotations

from typing import Any

import pytest

from careledger.contracts.supply import gs1
from careledger.contracts.supply.layout import pack_key
from careledger.core.block import Receipt
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code, InvalidTx, TxFailed
from support import Ledger, make_consortium

ACME_PREFIX = "0614141"
DAY_MS = 86_400_000


def gtin_of(prefix: str, item: str, indicator: str = "0") -> str:
    body = indicator + prefix + item
    assert len(body) == 13
    return body + str(gs1.check_digit(body))


GTIN = gtin_of(ACME_PREFIX, "00001")
GTIN2 = gtin_of(ACME_PREFIX, "00002")
FOREIGN_GTIN = gtin_of("039999", "012345")  # under the distributor's prefix
EXPIRY = "281231"  # far after the test genesis (2023-11-14)


def supply_consortium(label: str = "supply") -> Any:
    c = make_consortium(label=label)
    prefixes = {"manufacturer": [ACME_PREFIX, "030001"], "distributor": ["039999"]}
    for org in c.doc["organisations"]:
        org["gs1_company_prefixes"] = prefixes.get(org["id"], [])
    return c


class World:
    """A ledger with a registered product and helpers to drive packs through their life."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.c = ledger.consortium
        self.mfr = self.c.admin("manufacturer")
        self.dist = self.c.admin("distributor")
        self.pharmacy = self.c.admin("pharmacy")
        self.hospital = self.c.admin("hospital")
        self.regulator = self.c.admin("regulator")

    def run(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> Receipt:
        return self.ledger.run(key, tx_type, payload)

    def ok(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> Any:
        receipt = self.run(key, tx_type, payload)
        assert receipt.code == 0, (receipt.code, receipt.message)
        return receipt.result

    def register(self, gtin: str = GTIN, name: str = "Amoxicillin 500 mg capsules x 21") -> Any:
        return self.ok(self.mfr, "supply.register_product",
                       {"dosage_form": "capsule", "gtin": gtin, "name": name, "ndc": "0614-1410-01",
                        "strength": "500 mg"})

    def commission(self, serials: list[str], lot: str = "L1", expiry: str = EXPIRY, gtin: str = GTIN) -> Any:
        return self.ok(self.mfr, "supply.commission", {"expiry": expiry, "gtin": gtin, "lot": lot, "serials": serials})

    def ship(self, key: SigningKey, items: list[str], to: str) -> Any:
        return self.ok(key, "supply.ship", {"items": items, "to": to})

    def receive(self, key: SigningKey, items: list[str]) -> Any:
        return self.ok(key, "supply.receive", {"items": items})

    def to_pharmacy(self, items: list[str]) -> None:
        self.ship(self.mfr, items, "distributor")
        self.receive(self.dist, items)
        self.ship(self.dist, items, "pharmacy")
        self.receive(self.pharmacy, items)

    def pack(self, serial: str, gtin: str = GTIN) -> Any:
        return self.ledger.get(pack_key(gtin, serial))

    def refused_with(self, key: SigningKey, tx_type: str, payload: dict[str, Any], code: Code) -> Receipt:
        """The transaction is included but fails with ``code``; only the signer's nonce changes."""
        before = self.ledger.snapshot()
        receipt = self.run(key, tx_type, payload)
        assert receipt.code == code, (receipt.code, receipt.message)
        assert receipt.message
        after = self.ledger.snapshot()
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        assert changed == {f"nonce/{key.public_hex}"}
        return receipt

    def refused_at_admission(self, key: SigningKey, tx_type: str, payload: dict[str, Any], code: Code) -> TxFailed:
        """The mempool refuses the transaction (its authorisation fails against committed state, nothing
        changes); a block that includes it all the same fails it with ``code`` (only the signer's nonce
        changes)."""
        before = self.ledger.snapshot()
        with pytest.raises(TxFailed) as info:
            self.ledger.admit(self.ledger.tx(key, tx_type, payload, nonce=self.ledger.committed_nonce(key) + 1))
        assert info.value.code == code, (info.value.code, info.value.message)
        assert self.ledger.snapshot() == before
        self.refused_with(key, tx_type, payload, code)
        return info.value

    def invalid_with(self, key: SigningKey, tx_type: str, payload: dict[str, Any], code: Code) -> InvalidTx:
        """The transaction is refused at admission and never enters a block; nothing changes."""
        before = self.ledger.snapshot()
        raw = self.ledger.tx(key, tx_type, payload)
        with pytest.raises(InvalidTx) as info:
            self.ledger.admit(raw)
        assert info.value.code == code, (info.value.code, info.value.message)
        exc = self.ledger.refused(raw)
        assert exc.code == code
        assert self.ledger.snapshot() == before
        return exc


def ref(serial: str, gtin: str = GTIN) -> str:
    return f"{gtin}/{serial}"
