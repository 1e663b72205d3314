"""Response shapes, for the OpenAPI document only.

Routes return plain JSON (no re-validation on the way out); these models describe it. Every model
allows extra fields, so adding a field to a response is not a breaking change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from careledger.contracts.base import Registry
from careledger.core.tx import MAX_NONCE


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Open):
    code: int = Field(description="Stable numeric code (careledger.core.errors.Code).", examples=[301])
    name: str = Field(description="The code's stable name.", examples=["NONCE_REPLAYED"])
    message: str = Field(description="For humans; may change between releases.")


class ErrorResponse(_Open):
    """Every error response has this shape."""

    error: ErrorDetail
    tx_hash: str | None = Field(None, description="On every refusal that concerns a transaction whose hash can be "
                                                  "computed: SHA-256 of its wire bytes.")


class ReceiptView(_Open):
    code: int = Field(description="0 on success; otherwise the contract's refusal code (writes rolled back).")
    name: str = Field(description="'OK' or the refusal code's name.")
    result: Any = Field(None, description="What the contract returned (null when it failed).")
    events: list[dict[str, Any]] = Field(description="Events the transaction emitted, [{type, attrs}].")
    index: int = Field(description="Position of the transaction in its block.")
    message: str = Field(description="Human explanation of a failure; empty on success. Never hashed.")


class SubmitPending(_Open):
    tx_hash: str
    status: Literal["pending", "queued"] = Field(description="`queued`: its nonce is ahead of the signer's next; "
                                                 "it waits for the nonces before it (docs/protocol.md section 5).")


class SubmitCommitted(_Open):
    tx_hash: str
    status: Literal["committed"]
    height: int
    receipt: ReceiptView


class BatchItem(_Open):
    index: int = Field(description="Position of the item in the submitted array.")
    tx_hash: str | None = Field(None, description="SHA-256 of the item's bytes (null if the item was not hex).")
    status: Literal["pending", "queued", "committed", "rejected"]
    height: int | None = None
    receipt: ReceiptView | None = None
    error: ErrorDetail | None = None


class BatchResponse(_Open):
    accepted: int = Field(description="Items admitted to the mempool.")
    rejected: int = Field(description="Items refused (at admission, when building the block, or timed out).")
    results: list[BatchItem]


class TxView(_Open):
    tx_hash: str
    status: Literal["committed", "pending", "queued", "dropped"]
    error: ErrorDetail | None = Field(None, description="Why a dropped transaction was dropped.")
    height: int | None = None
    index: int | None = None
    tx: dict[str, Any] | None = Field(None, description="The decoded wire document: {body, sig}.")
    receipt: ReceiptView | None = None
    proof: dict[str, Any] | None = Field(None, description="Inclusion proof bundle; check it offline with "
                                                           "careledger.core.proofs.verify_proof.")


class ReceiptSummary(_Open):
    tx: str
    index: int
    code: int
    name: str


class BlockView(_Open):
    height: int
    hash: str = Field(description="SHA-256 of the canonical header bytes.")
    header: dict[str, Any]
    signature: str = Field(description="The proposer's Ed25519 signature of the block hash (domain 'block').")
    txs: list[str] = Field(description="Transaction hashes in block order.")
    receipts: list[ReceiptSummary]


class StatusView(_Open):
    chain_id: str
    engine: str
    height: int
    app_hash: str
    block_hash: str
    latest_block_time_ms: int
    node_key: str
    mempool: int
    genesis_hash: str
    crypto_suite: str


class NonceView(_Open):
    account: str
    committed: int = Field(description="Nonce of the account's last committed transaction (0 if none).")
    pending: int = Field(description="How many of its transactions wait in this node's mempool.")
    next: int = Field(description="The nonce its next transaction must carry.")


class Organisation(_Open):
    id: str
    name: str
    roles: list[str]
    admins: list[str]
    api: str | None = None
    status: str
    since: int


class OrganisationList(_Open):
    organisations: list[Organisation]


class Member(_Open):
    key: str
    roles: list[str]
    status: str


class MemberList(_Open):
    org: str
    members: list[Member]


class KeyInfo(_Open):
    key: str
    kind: str = Field(description="admin | member | patient")
    org: str | None = None
    roles: list[str]
    status: str = Field(description="The key record's own status: active | revoked.")
    active: bool = Field(description="Whether the key may sign now (also false once its organisation is removed).")
    since: int
    validator: dict[str, Any] | None = Field(None, description="{org, power} when the key is a validator.")


class PatientView(BaseModel):
    pseudonym: str
    key: str
    status: str
    since: int


class Proposal(_Open):
    id: str
    title: str
    action: dict[str, Any]
    proposer_org: str
    status: str = Field(description="open | executed | rejected | failed | expired (open past its expiry).")
    opened: int
    expires: int
    yes: list[str]
    no: list[str]


class ProposalList(_Open):
    proposals: list[Proposal]


class Validator(_Open):
    pub_key: str
    org: str
    power: int


class ValidatorList(_Open):
    validators: list[Validator]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses (which codes give which status:
    :mod:`careledger.api.status`)."""
    text = {400: "Malformed request", 401: "Signature or chain check failed", 403: "Not allowed",
            404: "Not found", 409: "Conflict (nonce, duplicate)", 410: "Gone (erased)", 413: "Too large",
            415: "Body not sent as Content-Type: application/json", 422: "Refused by the contract",
            429: "Too many requests from this client (RATE_LIMITED)",
            500: "Node error", 503: "Node busy", 504: "Timed out"}
    return {s: {"model": ErrorResponse, "description": text.get(s, "Error")} for s in statuses}


# --- transactions, from the registered payload models ---------------------------------------------------------

PAYLOAD_PREFIX = "tx."
"""The prefix of the payload models' component names (``tx.EnrolMember``), apart from response models."""


def transaction_schemas(registry: Registry) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schema of a signed transaction's wire form (docs/protocol.md section 4) for every
    (type, version) ``registry`` registers, generated from the handlers' payload models, and the
    component schemas it refers to (``#/components/schemas/tx.…``: one per payload model and the
    models inside).

    The schema is ``oneOf`` one object per (type, version): ``{"body": {"chain_id", "nonce", "payload",
    "signer", "type": const, "version": const}, "sig"}``, nothing else, with the payload's own schema
    (strict: unknown fields refused). Canonical form, the chain id and the signature itself are
    checked by the node and cannot be said in a schema.
    """
    handlers = registry.handlers()
    models = list(dict.fromkeys(h.payload for h in handlers))
    refs, top = models_json_schema([(model, "validation") for model in models],
                                   ref_template="#/components/schemas/" + PAYLOAD_PREFIX + "{model}")
    variants = []
    for handler in sorted(handlers, key=lambda h: (h.type, h.version)):
        body = {
            "type": "object", "additionalProperties": False,
            "required": ["chain_id", "nonce", "payload", "signer", "type", "version"],
            "properties": {
                "chain_id": {"type": "string"},
                "nonce": {"type": "integer", "minimum": 1, "maximum": MAX_NONCE},
                "payload": refs[(handler.payload, "validation")],
                "signer": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "type": {"const": handler.type},
                "version": {"const": handler.version},
            },
        }
        variants.append({"title": f"{handler.type} v{handler.version}", "description": handler.summary or None,
                         "type": "object", "additionalProperties": False, "required": ["body", "sig"],
                         "properties": {"body": body, "sig": {"type": "string", "pattern": "^[0-9a-f]{128}$"}}})
    for variant in variants:
        if variant["description"] is None:
            del variant["description"]
    return {"oneOf": variants}, {PAYLOAD_PREFIX + name: schema for name, schema in top.get("$defs", {}).items()}
