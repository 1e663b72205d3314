"""The Python client for records, consent and audit: signed requests, gateway calls, commitment checks.

::

    from careledger.client import Client
    from careledger.client.records import RecordsClient

    ledger = Client("http://127.0.0.1:8700")                       # any node of the consortium
    clinic = RecordsClient(ledger, dr_key, gateways={"st-marys": "http://127.0.0.1:8700"})
    [rec] = clinic.read("st-marys", pseudonym, [record_id], purpose="TREAT")
    rec.resource["resourceType"]        # checked: SHA-256(salt ‖ canonical) equals the ledger anchor

A custodian's gateway URL comes from ``gateways``, else from the organisation's ``api`` on the
ledger, else the ledger node itself (one embedded node hosting several organisations).
Errors are :class:`careledger.client.ClientError` with the stable code; a fetched record that does not
match its ledger anchor raises one with COMMITMENT_MISMATCH.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from careledger.client import Client, ClientError
from careledger.contracts.identity import compute_pseudonym
from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.tx import sign_tx
from careledger.vault.canonical import (
    canonical_bytes,
    compute_commitment,
    from_python,
    json_of_canonical,
    parse_exact,
    to_json_text,
    to_python,
)

__all__ = ["FetchedRecord", "RecordsClient"]


@dataclass(frozen=True)
class FetchedRecord:
    """A record read through a gateway and checked against its ledger anchor."""

    record: str
    version: int
    type: str
    custodian: str
    commitment: str
    salt: bytes
    canonical: bytes
    mode: str
    emergency: bool

    @property
    def resource(self) -> Any:
        """The resource as Python values (decimals as :class:`decimal.Decimal`, exactly)."""
        return to_python(codec.decode(self.canonical))

    def resource_json(self) -> str:
        """The resource as FHIR JSON text, decimals exactly as stored."""
        return to_json_text(codec.decode(self.canonical))


def _mismatch(message: str) -> ClientError:
    return ClientError(int(Code.COMMITMENT_MISMATCH), Code.COMMITMENT_MISMATCH.name, message, None)


class RecordsClient:
    """Acts as one key (a member, a patient or a delegate) against the ledger and custodians' gateways."""

    def __init__(self, ledger: Client, key: SigningKey, *, gateways: dict[str, str] | None = None) -> None:
        self.ledger = ledger
        self.key = key
        self.gateway_urls = dict(gateways or {})
        self._gateways: dict[str, Client] = {}
        self._pseudonym: str | None = None

    @property
    def pseudonym(self) -> str:
        """The pseudonym this key has (or would have) as a patient: the ledger's, for a key that replaced
        a patient's first key (rotation, recovery), else the one computed from the key."""
        if self._pseudonym is None:
            try:
                recorded = self.ledger.key_info(self.key.public_hex).get("pseudonym")
            except ClientError:  # not registered (yet): the pseudonym it would have
                return compute_pseudonym(self.key.public_hex)
            self._pseudonym = str(recorded) if recorded else compute_pseudonym(self.key.public_hex)
        return self._pseudonym

    def close(self) -> None:
        for c in self._gateways.values():
            c.close()

    def gateway(self, custodian: str) -> Client:
        if custodian not in self._gateways:
            url = self.gateway_urls.get(custodian) or self.ledger.organisation(custodian).get("api")
            self._gateways[custodian] = Client(url) if url else self.ledger
        return self._gateways[custodian]

    @staticmethod
    def _fields(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A typed request body: ``kind`` and the given fields, those that are None left out."""
        return {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}

    # -- custodian side ---------------------------------------------------------------------------------------
    def store(self, custodian: str, patient: str, resource: Any, record: str | None = None) -> dict[str, Any]:
        """Store a FHIR resource or bundle (dict, JSON text or bytes) at ``custodian``; returns the record ids."""
        value = parse_exact(resource) if isinstance(resource, str | bytes) else from_python(resource)
        canonical = canonical_bytes(value)
        fields = self._fields("store", {"custodian": custodian, "patient": patient, "record": record})
        body = json.dumps(fields).encode()[:-1] + b',"resource":' + json_of_canonical(canonical) + b"}"
        return self.gateway(custodian).request("POST", "/v1/gateway/store", content=body, sign=self.key,
                                                headers={"content-type": "application/json"}, timeout=60)

    # -- reading ----------------------------------------------------------------------------------------------
    def read(self, custodian: str, patient: str, records: list[str], purpose: str = "TREAT", *,
             emergency: bool = False, study: str | None = None, verify: bool = True) -> list[FetchedRecord]:
        """Read records through the custodian's gateway; each is checked against its ledger anchor."""
        body = self._fields("read", {"custodian": custodian, "emergency": emergency, "patient": patient,
                                     "purpose": purpose, "records": list(records), "study": study})
        doc = self.gateway(custodian).request("POST", "/v1/gateway/read", json=body, sign=self.key)
        fetched = []
        for r in doc["records"]:
            canonical, salt = r["canonical"].encode("utf-8"), bytes.fromhex(r["salt"])
            codec.decode(canonical)  # must be canonical bytes
            if compute_commitment(salt, canonical) != r["commitment"]:
                raise _mismatch(f"record {r['record']}: content does not match the commitment sent with it")
            fetched.append(FetchedRecord(r["record"], r["version"], r["type"], r["custodian"], r["commitment"], salt,
                                         canonical, r["mode"], r["emergency"]))
        if verify and fetched:
            self.check_anchors(patient, fetched, purpose, emergency=emergency, study=study)
        return fetched

    def check_anchors(self, patient: str, fetched: list[FetchedRecord], purpose: str, *, emergency: bool = False,
                      study: str | None = None) -> None:
        """Compare each record's commitment with the anchor on the ledger; raises COMMITMENT_MISMATCH."""
        anchors = self.anchors(patient, [f.record for f in fetched], purpose, emergency=emergency, study=study)
        by_record = {a["record"]: a for a in anchors["anchors"]}
        for f in fetched:
            anchor = by_record.get(f.record)
            version = next((v for v in (anchor or {}).get("versions", []) if v["version"] == f.version), None)
            if version is None or version["commitment"] != f.commitment or version["custodian"] != f.custodian:
                raise _mismatch(f"record {f.record} v{f.version} does not match its ledger anchor")

    def anchors(self, patient: str, records: list[str], purpose: str = "TREAT", *, emergency: bool = False,
                study: str | None = None) -> dict[str, Any]:
        return self._query("anchors", {"emergency": emergency, "patient": patient, "purpose": purpose,
                                       "records": list(records), "study": study})

    def index(self, patient: str, purpose: str = "TREAT", *, emergency: bool = False,
              study: str | None = None) -> list[dict[str, Any]]:
        """The patient's records this key may see (all of them for the patient or a delegate)."""
        doc = self._query("index", {"emergency": emergency, "patient": patient, "purpose": purpose, "study": study})
        return list(doc["records"])

    def view(self, patient: str | None = None, fhir: bool = False) -> dict[str, Any]:
        """The patient view (records, consents, delegates, break-glass sessions, access log)."""
        return self._query("view", {"format": "fhir" if fhir else "json", "patient": patient or self.pseudonym})

    def _query(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.ledger.request("POST", "/v1/records/query", json=self._fields(kind, fields), sign=self.key)

    # -- transactions -----------------------------------------------------------------------------------------
    def erase(self, record: str, reason: str = "patient_request", custodian: str | None = None) -> dict[str, Any]:
        """Sign ``records.erase`` and hand it to the custodian's gateway, which commits it and shreds."""
        if custodian is None:
            raise ValueError("name the custodian whose gateway erases the record")
        nonce = int(self.ledger.nonce(self.key.public_hex)["next"])
        raw = sign_tx(self.key, self.ledger.chain_id(), "records.erase", 1, nonce,
                      {"reason": reason, "record": record})
        return self.gateway(custodian).request("POST", "/v1/gateway/erase", json={"tx": raw.hex()}, timeout=60)

    def grant(self, patient: str, grantee_kind: str, grantee_id: str, purposes: list[str], *,
              resource_types: list[str] | None = None, records: list[str] | None = None,
              period: dict[str, int | None] | None = None, data_period: dict[str, int | None] | None = None,
              provision: str = "permit") -> dict[str, Any]:
        payload: dict[str, Any] = {"grantee": {"id": grantee_id, "kind": grantee_kind}, "patient": patient,
                                   "provision": provision, "purposes": purposes,
                                   "records": list(records or []), "resource_types": list(resource_types or [])}
        if period is not None:
            payload["period"] = period
        if data_period is not None:
            payload["data_period"] = data_period
        return self.ledger.send(self.key, "consent.grant", 1, payload)

    def revoke(self, consent: str) -> dict[str, Any]:
        return self.ledger.send(self.key, "consent.revoke", 1, {"consent": consent})

    def appoint_delegate(self, delegate: str, until_ms: int | None = None) -> dict[str, Any]:
        return self.ledger.send(self.key, "consent.appoint_delegate", 1, {"delegate": delegate, "until_ms": until_ms})

    def break_glass(self, patient: str, reason: str, minutes: int = 240) -> dict[str, Any]:
        return self.ledger.send(self.key, "consent.break_glass", 1,
                                {"minutes": minutes, "patient": patient, "reason": reason})
