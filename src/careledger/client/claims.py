"""The Python client for insurance claims: one method per claims transaction, claim queries, claim documents.

::

    from careledger.client import Client
    from careledger.client.claims import ClaimsClient

    ledger = Client("http://127.0.0.1:8700")
    hospital = ClaimsClient(ledger, hospital_officer_key)
    done = hospital.submit("st-marys", pseudonym, encounter_record, coverage, "united-health-ins", fhir_claim)
    claim = done["receipt"]["result"]["claim"]
    insurer = ClaimsClient(ledger, insurer_officer_key)
    insurer.adjudicate(claim)                  # fetched through the provider's gateway, checked, adjudicated
    insurer.pay(claim, remittance=insurer.status(claim)["adjudications"][-1]["records"]["response"] ...)

Transactions behind which a document stands (``claims.submit``, ``claims.register_coverage``,
``claims.update_coverage``, ``claims.adjudicate``) go in two calls to the desk of the node that hosts
the document's vault (its gateway URL from ``gateways``, else the organisation's ``api`` on the ledger,
else the ledger node itself): *prepare* answers the payload, the client signs it with the officer's
key, *commit* anchors the documents and submits it. The others are sent as ordinary transactions.
Every method returns the committed transaction (``receipt.code`` 0 or the contract's refusal);
refusals before a block raise :class:`careledger.client.ClientError` with the stable code.
:meth:`ClaimsClient.adjudicate` raises :class:`ClaimFlagged` after recording the flag for a claim
whose content, fingerprints or encounter do not match the ledger.
"""

from __future__ import annotations

import json
from typing import Any

from careledger.client import Client, ClientError
from careledger.client.records import FetchedRecord, RecordsClient
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.tx import sign_tx
from careledger.vault.canonical import canonical_bytes, from_python, json_of_canonical, parse_exact
from careledger.vault.requests import authorization

__all__ = ["ClaimFlagged", "ClaimsClient"]

PAYMENT = "HPAYMT"
READ_TARGET = "/v1/gateway/read"
"""The custodian's gateway route a forwarded read is signed for (careledger.claims.requests.READ_TARGET)."""


class ClaimFlagged(ClientError):
    """The insurer's node refused the claim (content, fingerprints or encounter do not match the ledger)
    and the flag was recorded with ``claims.flag``: ``flag`` is ``{claim, kind}``, ``flag_result`` the
    committed flag transaction."""

    def __init__(self, error: ClientError, flag: dict[str, Any], flag_result: dict[str, Any]) -> None:
        super().__init__(error.code, error.name, error.message, error.http_status, error.tx_hash, error.document)
        self.flag = flag
        self.flag_result = flag_result


def _post_for_flag(gateway: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body``; the answer, or :class:`ClaimFlagged` (without a flag result yet) for a refusal that
    carries a ``flag`` (the intake's refusal says which flag to record), else the usual :class:`ClientError`."""
    try:
        return gateway.request("POST", path, json=body, timeout=60)
    except ClientError as exc:
        flag = exc.document.get("flag") if exc.document is not None else None
        if isinstance(flag, dict):
            raise ClaimFlagged(exc, flag, {}) from None
        raise


def _error(code: Code, message: str, http_status: int | None = None) -> ClientError:
    return ClientError(int(code), code.name, message, http_status)


class ClaimsClient:
    """Acts as one key (a claims officer, an organisation admin, a patient) on claims."""

    def __init__(self, ledger: Client, key: SigningKey, *, gateways: dict[str, str] | None = None) -> None:
        self.ledger = ledger
        self.key = key
        self.records = RecordsClient(ledger, key, gateways=gateways)

    @property
    def pseudonym(self) -> str:
        return self.records.pseudonym

    def close(self) -> None:
        self.records.close()

    def _forwarded_read(self, fields: dict[str, Any]) -> dict[str, str]:
        """This key's signed gateway ``read`` of ``fields`` for the desk to hand on (docs/protocol.md section
        4.3: signed for ``POST /v1/gateway/read``; the body's exact text beside its Authorization header)."""
        body = json.dumps({"kind": "read", **fields}).encode()
        return {"authorization": authorization(self.key, self.ledger.chain_id(), "POST", READ_TARGET, body),
                "body": body.decode()}

    def _send(self, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self.ledger.send(self.key, tx_type, 1, payload)

    def _prepare(self, custodian: str, path: str, kind: str, fields: dict[str, Any], resource: Any) -> dict[str, Any]:
        value = parse_exact(resource) if isinstance(resource, str | bytes) else from_python(resource)
        canonical = canonical_bytes(value)
        head = json.dumps({"kind": kind, **fields, "custodian": custodian}).encode()
        body = head[:-1] + b',"resource":' + json_of_canonical(canonical) + b"}"  # its decimals exactly as given
        return self.records.gateway(custodian).request("POST", path, content=body, sign=self.key,
                                                        headers={"content-type": "application/json"}, timeout=60)

    def commit(self, custodian: str, prepared: dict[str, Any]) -> dict[str, Any]:
        """Sign a prepared payload as this key's next transaction and hand it to the desk that prepared it."""
        nonce = int(self.ledger.nonce(self.key.public_hex)["next"])
        raw = sign_tx(self.key, self.ledger.chain_id(), prepared["type"], prepared["version"], nonce,
                      prepared["payload"])
        return self.records.gateway(custodian).request("POST", "/v1/claims/txs", json={"tx": raw.hex()}, timeout=60)

    # -- coverage, plans, edit tables -------------------------------------------------------------------------
    def register_coverage(self, insurer: str, patient: str, resource: Any) -> dict[str, Any]:
        """``claims.register_coverage`` from a FHIR Coverage, stored in ``insurer``'s vault behind its commitment."""
        prepared = self._prepare(insurer, "/v1/claims/coverages/prepare", "coverage.prepare", {"patient": patient},
                                 resource)
        return self.commit(insurer, prepared)

    def update_coverage(self, coverage: str, insurer: str, patient: str, resource: Any) -> dict[str, Any]:
        """``claims.update_coverage`` from the coverage's new FHIR version (status, end, order)."""
        prepared = self._prepare(insurer, "/v1/claims/coverages/prepare", "coverage.prepare",
                                 {"coverage": coverage, "patient": patient}, resource)
        return self.commit(insurer, prepared)

    def register_plan(self, insurer: str, plan: str, version: int, effective_day: int,
                      rules: dict[str, Any]) -> dict[str, Any]:
        """``claims.register_plan``: the next version of a plan's benefit rules."""
        return self._send("claims.register_plan", {"effective_day": effective_day, "insurer": insurer, "plan": plan,
                                                   "rules": rules, "version": version})

    def propose_table(self, name: str, version: str, effective_day: int, digest: str,
                      source: str = "synthetic") -> dict[str, Any]:
        """``claims.propose_table``: an edit-table version for the consortium's vote (an admin signs)."""
        return self._send("claims.propose_table", {"digest": digest, "effective_day": effective_day, "name": name,
                                                   "source": source, "version": version})

    def vote_table(self, name: str, version: str, approve: bool) -> dict[str, Any]:
        """``claims.vote_table``: an organisation admin's vote."""
        return self._send("claims.vote_table", {"approve": approve, "name": name, "version": version})

    # -- a claim's life ---------------------------------------------------------------------------------------
    def submit(self, provider: str, patient: str, encounter: str, coverage: str, insurer: str, resource: Any, *,
               replaces: str | None = None, prior_payer_claim: str | None = None) -> dict[str, Any]:
        """``claims.submit``: a FHIR Claim for an encounter ``provider``'s vault holds, prepared by its desk."""
        prepared = self._prepare(provider, "/v1/claims/prepare", "claim.prepare", {
            "coverage": coverage, "encounter": encounter, "insurer": insurer, "patient": patient,
            "prior_payer_claim": prior_payer_claim, "replaces": replaces}, resource)
        return self.commit(provider, prepared)

    def submit_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``claims.submit`` with a payload built elsewhere, straight to the ledger (no desk, no documents)."""
        return self._send("claims.submit", payload)

    def intake(self, claim: str) -> dict[str, Any]:
        """The insurer's node fetches the claim and its encounter through the provider's gateway (this key's
        signed read, purpose HPAYMT), checks and adjudicates it: the ``claims.adjudicate`` payload to sign."""
        status = self.status(claim)
        record = status["claim"]
        reads = [self._forwarded_read({"custodian": record["provider"], "emergency": False,
                                       "patient": record["patient"], "purpose": PAYMENT,
                                       "records": sorted({status["record"], record["encounter"]})})]
        if record["prior_payer_claim"] is not None:
            primary = self.status(record["prior_payer_claim"])
            latest = primary["adjudications"][-1] if primary["adjudications"] else None
            if latest is not None and latest["records"] is not None:
                reads.append(self._forwarded_read({"custodian": primary["claim"]["insurer"], "emergency": False,
                                                   "patient": record["patient"], "purpose": PAYMENT,
                                                   "records": [latest["records"]["response"]]}))
        return _post_for_flag(self.records.gateway(record["insurer"]), "/v1/claims/intake",
                              {"claim": claim, "reads": reads})

    def adjudicate(self, claim: str) -> dict[str, Any]:
        """``claims.adjudicate`` through the insurer's desk (:meth:`intake`, then sign and commit). A claim
        the node refuses is flagged (``claims.flag``) and :class:`ClaimFlagged` raised."""
        insurer = self.status(claim)["claim"]["insurer"]
        try:
            prepared = self.intake(claim)
        except ClaimFlagged as exc:
            raise ClaimFlagged(exc, exc.flag, self.flag(exc.flag["claim"], exc.flag["kind"])) from exc
        return {**self.commit(insurer, prepared), "adjudication": {
            k: prepared[k] for k in ("outcome", "totals", "currency", "lines", "flags")}}

    def flag(self, claim: str, kind: str) -> dict[str, Any]:
        """``claims.flag``: content, fingerprints or encounter found not to match (``content-mismatch`` ...)."""
        return self._send("claims.flag", {"claim": claim, "kind": kind})

    def pay(self, claim: str, remittance: str | None = None) -> dict[str, Any]:
        """``claims.pay``: a commitment to the remittance (default: the anchor commitment of the latest
        adjudication's ClaimResponse, which carries the payment)."""
        if remittance is None:
            documents = self.status(claim)["adjudications"][-1]["documents"]
            if not documents or documents["response"]["commitment"] is None:
                raise _error(Code.NOT_FOUND, f"claim {claim} has no ClaimResponse to pay against")
            remittance = documents["response"]["commitment"]
        return self._send("claims.pay", {"claim": claim, "remittance": remittance})

    def appeal(self, claim: str, reason: str) -> dict[str, Any]:
        """``claims.appeal`` by the provider, the patient or a delegate."""
        return self._send("claims.appeal", {"claim": claim, "reason": reason})

    def void(self, claim: str, reason: str) -> dict[str, Any]:
        """``claims.void`` by the provider."""
        return self._send("claims.void", {"claim": claim, "reason": reason})

    # -- queries ----------------------------------------------------------------------------------------------
    def _query(self, path: str, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.ledger.request("POST", f"/v1/claims/{path}", json={"kind": kind, **fields}, sign=self.key)

    def status(self, claim: str) -> dict[str, Any]:
        """The claim, its adjudications (with the records behind them), payments, appeals and flags."""
        return self._query("status", "claims.status", {"claim": claim})

    def claims(self, patient: str | None = None) -> list[dict[str, Any]]:
        return list(self._query("list", "claims.list", {"patient": patient or self.pseudonym})["claims"])

    def flags(self, insurer: str, since_height: int = 0) -> list[dict[str, Any]]:
        return list(self._query("flags", "claims.flags", {"insurer": insurer, "since_height": since_height})["flags"])

    def coverages(self, patient: str | None = None) -> list[dict[str, Any]]:
        return list(self._query("coverages", "claims.coverages", {"patient": patient or self.pseudonym})["coverages"])

    def eligibility(self, patient: str | None = None, day: int | None = None,
                    insurer: str | None = None) -> dict[str, Any]:
        """FHIR CoverageEligibilityResponse(s) for the patient on ``day`` (default: today)."""
        return self._query("eligibility", "claims.eligibility",
                           {"day": day, "insurer": insurer, "patient": patient or self.pseudonym})

    def plan(self, insurer: str, plan: str) -> dict[str, Any]:
        return self.ledger.request("GET", f"/v1/claims/plans/{insurer}/{plan}")

    def table(self, name: str) -> dict[str, Any]:
        return self.ledger.request("GET", f"/v1/claims/tables/{name}")

    # -- documents, through the custodian's gateway ----------------------------------------------------------------
    def adjudication_document(self, claim: str, kind: str, n: int | None = None,
                              purpose: str = PAYMENT) -> FetchedRecord:
        """The ``package``, ``response`` (ClaimResponse) or ``eob`` record of adjudication ``n`` (default:
        the latest) from the insurer's gateway, checked against its ledger anchor; audited."""
        status = self.status(claim)
        done = [a for a in status["adjudications"] if a["records"] is not None]
        chosen = done[-1] if n is None and done else next((a for a in done if a["n"] == n), None)
        if chosen is None:
            raise _error(Code.NOT_FOUND, f"claim {claim} has no such adjudication by its insurer")
        [fetched] = self.records.read(status["claim"]["insurer"], status["claim"]["patient"],
                                      [chosen["records"][kind]], purpose)
        return fetched

    def eob(self, claim: str, n: int | None = None) -> dict[str, Any]:
        """The patient's ExplanationOfBenefit (CARIN Blue Button shape), from the insurer's gateway."""
        resource: dict[str, Any] = self.adjudication_document(claim, "eob", n, purpose="PATRQT").resource
        return resource
