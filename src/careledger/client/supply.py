"""The Python client for the supply chain: :class:`SupplyClient` is a :class:`~careledger.client.Client`
with the supply and EPCIS calls added.

::

    from careledger.client.supply import SupplyClient
    with SupplyClient("http://127.0.0.1:8700") as client:
        client.commission(acme_key, "00614141000012", lot="L1", expiry="281231", serials=["A1", "A2"])
        verdict = client.verify(scan="]d20100614141000012172812311" + "0L1\\x1d21A1")

Writes return the committed result (``result["receipt"]["code"] != 0`` for a refusal the contract
recorded); reads return the JSON documents of ``docs/supply-chain.md``; errors raise
:class:`~careledger.client.ClientError`.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from careledger.client import Client, _seg
from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.tx import body_of

__all__ = ["SupplyClient"]


class SupplyClient(Client):
    """A node's HTTP API with the supply-chain calls."""

    # -- writes ---------------------------------------------------------------------------------------
    def supply(self, key: SigningKey, action: str, payload: dict[str, Any], wait: bool = True) -> dict[str, Any]:
        """Send ``supply.<action>`` (version 1) signed by ``key``."""
        return self.send(key, f"supply.{action}", 1, payload, wait=wait)

    def register_product(self, key: SigningKey, gtin: str, name: str, **master_data: Any) -> dict[str, Any]:
        return self.supply(key, "register_product", {"gtin": gtin, "name": name, **master_data})

    def commission(self, key: SigningKey, gtin: str, lot: str, expiry: str, serials: list[str] | None = None,
                   serial_range: dict[str, Any] | None = None, wait: bool = True) -> dict[str, Any]:
        payload: dict[str, Any] = {"expiry": expiry, "gtin": gtin, "lot": lot}
        if serials is not None:
            payload["serials"] = serials
        if serial_range is not None:
            payload["serial_range"] = serial_range
        return self.supply(key, "commission", payload, wait=wait)

    def aggregate(self, key: SigningKey, parent: str, children: list[str]) -> dict[str, Any]:
        return self.supply(key, "aggregate", {"children": children, "parent": parent})

    def disaggregate(self, key: SigningKey, parent: str, children: list[str] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"parent": parent}
        if children is not None:
            payload["children"] = children
        return self.supply(key, "disaggregate", payload)

    def ship(self, key: SigningKey, items: list[str], to: str) -> dict[str, Any]:
        return self.supply(key, "ship", {"items": items, "to": to})

    def receive(self, key: SigningKey, items: list[str]) -> dict[str, Any]:
        return self.supply(key, "receive", {"items": items})

    def decommission(self, key: SigningKey, items: list[str], state: str) -> dict[str, Any]:
        return self.supply(key, "decommission", {"items": items, "state": state})

    def dispense(self, key: SigningKey, items: list[str]) -> dict[str, Any]:
        return self.decommission(key, items, "supplied")

    def undo(self, key: SigningKey, items: list[str], state: str) -> dict[str, Any]:
        return self.supply(key, "undo", {"items": items, "state": state})

    def recall_lot(self, key: SigningKey, gtin: str, lot: str, reason: str) -> dict[str, Any]:
        return self.supply(key, "recall_lot", {"gtin": gtin, "lot": lot, "reason": reason})

    def withdraw_product(self, key: SigningKey, gtin: str, reason: str) -> dict[str, Any]:
        return self.supply(key, "withdraw_product", {"gtin": gtin, "reason": reason})

    def verify_scan(self, key: SigningKey, **identifier: str) -> dict[str, Any]:
        """A signed scan (``supply.verify``): recorded on the ledger, raising alerts when suspicious."""
        return self.supply(key, "verify", identifier)

    def set_location(self, key: SigningKey, gln: str, name: str, role: str, org: str | None = None,
                     address: dict[str, str] | None = None, status: str = "active") -> dict[str, Any]:
        """Register, update or retire (``status="retired"``) a location (``supply.set_location``); ``org``
        defaults to the signer's organisation (a regulator's admin names another one)."""
        payload: dict[str, Any] = {"gln": gln, "name": name, "role": role, "status": status}
        if org is not None:
            payload["org"] = org
        if address:
            payload["address"] = address
        return self.supply(key, "set_location", payload)

    def epcis_confirm(self, key: SigningKey, capture: str, approve: bool = True) -> dict[str, Any]:
        """Confirm (or, with ``approve=False``, reject) the events of a multi-party capture attributed to
        ``key``'s organisation (``supply.epcis_confirm``)."""
        return self.supply(key, "epcis_confirm", {"approve": approve, "capture": capture})

    def epcis_capture(self, key: SigningKey, document: str | dict[str, Any], wait: bool = True,
                      timeout: float = 30.0) -> dict[str, Any]:
        """Capture an EPCIS document through ``POST /v1/epcis/capture``; with ``wait``, poll the job
        until it is committed and return it (``success`` true or false). A document captured before is
        answered at once: ``{"status": "already_captured", "captureID", "captureIDs"}`` (the originals)."""
        text = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
        pub = key.public_hex
        with self._key_lock(pub):
            self._nonces.pop(pub, None)
            nonce = int(self.nonce(pub)["next"])
            body = body_of(self.chain_id(), "supply.epcis_capture", 1, pub, nonce, {"document": text})
            sig = key.sign("tx", self.chain_id(), codec.encode(body)).hex()
            job = self.request("POST", "/v1/epcis/capture", content=text.encode(),
                                headers={"content-type": "application/ld+json", "X-CareLedger-Key": pub,
                                         "X-CareLedger-Nonce": str(nonce), "X-CareLedger-Signature": sig})
        if not wait or job.get("status") == "already_captured":
            return job
        deadline = time.monotonic() + timeout
        while True:
            status = self.capture_job(job["captureID"])
            if not status["running"] or time.monotonic() > deadline:
                return status
            time.sleep(0.02)

    # -- reads ----------------------------------------------------------------------------------------
    def capture_job(self, capture_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/epcis/capture/{_seg(capture_id)}")

    def location(self, gln: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/supply/locations/{_seg(gln)}")

    def locations(self, org: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("org", org), ("status", status)) if v is not None}
        return list(self.request("GET", "/v1/supply/locations", params=params)["locations"])

    def capture(self, capture_id: str) -> dict[str, Any]:
        """A multi-party capture: who confirmed, the events still pending, its status."""
        return self.request("GET", f"/v1/supply/captures/{_seg(capture_id)}")

    def captures(self, awaiting: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Multi-party captures; with ``awaiting``, those with events waiting for that organisation."""
        params = {k: v for k, v in (("awaiting", awaiting), ("status", status)) if v is not None}
        return list(self.request("GET", "/v1/supply/captures", params=params)["captures"])

    def product(self, gtin: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/supply/products/{_seg(gtin)}")

    def lot(self, gtin: str, lot: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/supply/products/{_seg(gtin)}/lots/{_seg(lot)}")

    def pack(self, gtin: str, serial: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/supply/packs/{_seg(gtin)}/{quote(serial, safe='')}")

    def item(self, epc: str) -> dict[str, Any]:
        """A pack or logistic unit by EPC URN, Digital Link or ledger ref."""
        return self.request("GET", "/v1/supply/items", params={"epc": epc})

    def verify(self, **identifier: str) -> dict[str, Any]:
        """Read-only verification: ``gtin``+``serial`` (+``lot``, ``expiry``), ``dl`` or ``scan``."""
        return self.request("GET", "/v1/supply/verify", params=identifier)

    def alerts(self, key: SigningKey, kind: str | None = None, since_height: int = 0, gtin: str | None = None,
               party: str | None = None, from_ms: int | None = None, to_ms: int | None = None) -> dict[str, Any]:
        """Alerts visible to ``key``'s organisation (a signed GET; regulators and manufacturers only), by kind,
        GTIN, the party that raised them and block-time period ``[from_ms, to_ms)``."""
        params: dict[str, Any] = {"since_height": since_height}
        for name, value in (("kind", kind), ("gtin", gtin), ("party", party), ("from_ms", from_ms),
                            ("to_ms", to_ms)):
            if value is not None:
                params[name] = value
        return self.request("GET", "/v1/supply/alerts", params=params, sign=key)

    def epcis_events(self, epcs: list[str], **filters: str) -> dict[str, Any]:
        """An EPCISQueryDocument; filters are EPCIS names (``EQ_bizStep``, ``GE_eventTime``, …)."""
        return self.request("GET", "/v1/epcis/events", params=[("MATCH_epc", e) for e in epcs] + sorted(
            filters.items()))

    def epcis_query(self, **params: str | int | list[str]) -> dict[str, Any]:
        """An EPCISQueryDocument of captured events by the EPCIS query parameters (``EQ_bizStep``,
        ``GE_eventTime``, ``EQ_bizLocation``, ``MATCH_anyEPC=[...]``, ``perPage``, ``nextPageToken``, ...); the
        next page's token, if any, is ``doc["epcisBody"]["queryResults"].get("careledger:nextPageToken")``."""
        items: list[tuple[str, str]] = []
        for name, value in sorted(params.items()):
            items += [(name, v) for v in value] if isinstance(value, list) else [(name, str(value))]
        return self.request("GET", "/v1/epcis/events", params=items)

    def epcis_export(self, epcs: list[str], contents: bool = True) -> dict[str, Any]:
        params: list[tuple[str, Any]] = [("epc", e) for e in epcs]
        params.append(("contents", "true" if contents else "false"))
        return self.request("GET", "/v1/epcis/export", params=params)
