"""Insurance claims over HTTP: the node's claims desk, signed claim queries, and plans and edit tables.

Claims transactions that carry no commitment to a document (``claims.register_plan``,
``claims.propose_table``, ``claims.vote_table``, ``claims.flag``, ``claims.pay``, ``claims.appeal``,
``claims.void``) are ordinary transactions (``POST /v1/txs``). Those behind which a document stands go
through the desk of the node that hosts the document's vault (:mod:`careledger.claims.desk`):

* ``POST /v1/claims/prepare``            a provider's officer: a FHIR Claim → the ``claims.submit`` payload;
* ``POST /v1/claims/coverages/prepare``  an insurer's officer: a FHIR Coverage → ``claims.register_coverage``
                                         (or ``claims.update_coverage``) payload;
* ``POST /v1/claims/intake``             an insurer's officer: its signed read of the claim at the provider →
                                         the adjudication, and the ``claims.adjudicate`` payload (or the
                                         refusal and the flag to record);
* ``POST /v1/claims/txs``                the signed transaction: its documents are anchored, then it is
                                         submitted and its receipt returned.

The prepare routes and the queries about a patient's claims take signed requests (docs/protocol.md
section 4.3; their kinds in :mod:`careledger.claims.requests`, the queries in :mod:`careledger.claims.queries`):
``POST /v1/claims/status``, ``/list``, ``/flags``, ``/coverages``, ``/eligibility``. Plans and edit
tables are rule data about no one: ``GET /v1/claims/plans/{insurer}/{plan}``, ``GET
/v1/claims/tables/{name}``. Bodies are JSON (:func:`careledger.api.common.read_body`); every status a
route answers is declared in the OpenAPI document, each from the one table (:mod:`careledger.api.status`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from careledger.api import schemas
from careledger.api.common import inline_defs, node_of, not_found, read_body, receipt_json, signed_request, signed_route
from careledger.api.errors import LedgerRoute, error_response
from careledger.api.records import RecordsServices
from careledger.api.services import NodeContext, Services, services_of
from careledger.claims import requests as claims_requests
from careledger.claims.desk import ClaimsDesk, IntakeRefused
from careledger.claims.queries import ClaimQueries
from careledger.contracts.claims import plan_versions
from careledger.contracts.claims.handlers import ClaimId
from careledger.contracts.claims.layout import TableRecord, table_prefix
from careledger.core.errors import Code, LedgerError
from careledger.vault.canonical import parse_exact
from careledger.vault.fhir import FhirInvalid
from careledger.vault.ledger import NodeLedger
from careledger.vault.requests import SignedRequest

MAX_REQUEST_BYTES = 64 * 1024
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

router = APIRouter(prefix="/v1/claims", tags=["claims"], route_class=LedgerRoute)


@dataclass
class ClaimsServices:
    desk: ClaimsDesk
    queries: ClaimQueries


def start(context: NodeContext, services: Services) -> None:
    """The claims desk over the records gateway (so it runs after :func:`careledger.api.records.start`),
    with the edit tables of ``HOME/claims/tables``; and the claim queries."""
    gateway = services.get(RecordsServices).gateway
    services.add(ClaimsServices(ClaimsDesk(gateway, context.engine, tables_dir=context.home / "claims" / "tables"),
                                ClaimQueries(NodeLedger(context.engine))))


def claims_of(request: Request) -> ClaimsServices:
    return services_of(request).get(ClaimsServices)


# --- the shapes, for the OpenAPI document -------------------------------------------------------------------

class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntakeBody(_Closed):
    claim: ClaimId
    reads: Annotated[list[claims_requests.ForwardedRead], Field(min_length=1, max_length=2, description=(
        "The officer's signed read (for POST /v1/gateway/read) of the claim's record and its encounter at the "
        "provider, purpose HPAYMT; for a secondary claim, a second read of the prior payer's ClaimResponse at "
        "its insurer."))]


class CommitBody(_Closed):
    tx: Annotated[str, Field(pattern=r"^([0-9a-f]{2})+$", description="The signed transaction's wire bytes, hex.")]


class DocumentRef(_Open):
    record: str
    type: str


class PreparedTx(_Open):
    type: str = Field(description="The transaction type to sign with this payload.")
    version: int
    payload: dict[str, Any] = Field(description="Sign exactly this payload; then POST the transaction to "
                                                "/v1/claims/txs on this node.")
    records: list[DocumentRef] = Field(description="The records the node anchors when the transaction comes.")
    expires_ms: int = Field(description="The node keeps the prepared documents in memory until then.")


class LineSummary(_Open):
    sequence: int
    outcome: str
    codes: list[str]
    submitted: int
    benefit: int


class IntakeAnswer(PreparedTx):
    outcome: Literal["approved", "partial", "denied", "pended"]
    totals: dict[str, int] = Field(description="Minor units: submitted, eligible, deductible, copay, coinsurance, "
                                               "benefit (paid).")
    currency: str
    flags: list[str]
    balanced: bool
    lines: list[LineSummary]


class IntakeRefusal(schemas.ErrorResponse):
    flag: dict[str, str] | None = Field(None, description="{claim, kind}: record it with claims.flag.")


class CommittedAnswer(_Open):
    tx_hash: str
    status: Literal["committed"]
    height: int
    receipt: schemas.ReceiptView
    records: list[dict[str, Any]] = Field(description="The records anchored before the transaction.")


class ClaimStatusView(_Open):
    claim: dict[str, Any] = Field(description="The ledger's claim record (no codes, no amounts).")
    record: str = Field(description="The provider's record holding the FHIR Claim.")
    encounter_state: str = Field(description="active | erased | unknown")
    adjudications: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    appeals: list[dict[str, Any]]
    as_: str = Field(alias="as", description="patient | delegate | provider | insurer | secondary-payer")


class ClaimList(_Open):
    patient: str
    claims: list[dict[str, Any]]


class FlagFeed(_Open):
    insurer: str
    flags: list[dict[str, Any]]


class CoverageList(_Open):
    patient: str
    coverages: list[dict[str, Any]]


class EligibilityAnswer(_Open):
    patient: str
    day: int
    date: str
    covered: bool
    primary: str | None
    responses: list[dict[str, Any]] = Field(description="FHIR R4 CoverageEligibilityResponse, one per insurer.")


class PlanVersions(_Open):
    insurer: str
    plan: str
    versions: list[dict[str, Any]]


class TableVersions(_Open):
    name: str
    versions: list[dict[str, Any]]


def body(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": inline_defs(model.model_json_schema())}}}}


def ok(model: type[BaseModel], description: str = "The answer") -> dict[int | str, Any]:
    return {200: {"model": model, "description": description}}


def errors(*statuses: int, flagged: tuple[int, ...] = ()) -> dict[int | str, dict[str, Any]]:
    """:func:`careledger.api.schemas.errors`; the ``flagged`` statuses answer an :class:`IntakeRefusal`
    (the error with the flag to record) for a refusal of the intake checks."""
    declared = schemas.errors(*statuses, *flagged)
    for status in flagged:
        declared[status] = {"model": IntakeRefusal, "description": {
            422: "Refused by the rules, or by the intake checks (with the flag to record)",
            502: "The provider's gateway answered content that fails its ledger anchor (with the flag)"}[status]}
    return declared


# --- helpers ------------------------------------------------------------------------------------------------

async def _signed(request: Request, limit: int) -> SignedRequest:
    """The signed request as received: media type and size checked, the body read whole."""
    return signed_request(request, await read_body(request, limit))


async def _doc(request: Request, limit: int) -> Any:
    raw = await read_body(request, limit)
    try:
        return parse_exact(raw)
    except LedgerError as exc:
        raise LedgerError(exc.message, Code.REQUEST_MALFORMED) from None


def _error(exc: LedgerError, tx_hash: str | None = None) -> JSONResponse:
    extra: dict[str, Any] = {}
    if isinstance(exc, FhirInvalid):
        extra["operation_outcome"] = exc.outcome
    if isinstance(exc, IntakeRefused):
        extra["flag"] = exc.flag
    if tx_hash is not None:
        extra["tx_hash"] = tx_hash
    return error_response(exc, extra)


async def _run(fn: Any, *args: Any, tx_hash: str | None = None) -> JSONResponse:
    try:
        return JSONResponse(await run_in_threadpool(fn, *args))
    except LedgerError as exc:
        return _error(exc, tx_hash)


def _validated(model: type[BaseModel], doc: Any) -> Any:
    """The body's shape, checked before the desk sees it (REQUEST_MALFORMED, naming the field)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise LedgerError(f"{where}: {first.get('msg', 'invalid')}", Code.REQUEST_MALFORMED) from None


# --- the desk -------------------------------------------------------------------------------------------------

@router.post("/prepare", summary="Prepare a claim (provider's claims officer; signed)",
             openapi_extra=signed_route(claims_requests.ClaimPrepare),
             response_model=None,
             responses={**ok(PreparedTx, "The claims.submit payload to sign"),
                        **errors(400, 401, 403, 404, 409, 410, 413, 415, 422, 500, 503)})
async def prepare_claim(request: Request) -> JSONResponse:
    """A FHIR Claim for an encounter this node's vault of the provider holds: validated, its content
    commitment and line fingerprints computed here (the salts never leave the node). Answers the
    `claims.submit` payload; sign it and POST the transaction to `/v1/claims/txs` on this node."""
    try:
        signed = await _signed(request, MAX_DOCUMENT_BYTES)
    except LedgerError as exc:
        return _error(exc)
    return await _run(claims_of(request).desk.prepare_claim, signed)


@router.post("/coverages/prepare", summary="Prepare a coverage (insurer's claims officer; signed)",
             openapi_extra=signed_route(claims_requests.CoveragePrepare), response_model=None,
             responses={**ok(PreparedTx, "The claims.register_coverage or claims.update_coverage payload"),
                        **errors(400, 401, 403, 404, 409, 413, 415, 422, 503)})
async def prepare_coverage(request: Request) -> JSONResponse:
    """A FHIR Coverage for a pseudonymous beneficiary: only plan, period, order and status reach the
    ledger, behind a salted commitment to the whole resource (stored in this node's vault of the insurer)."""
    try:
        signed = await _signed(request, MAX_DOCUMENT_BYTES)
    except LedgerError as exc:
        return _error(exc)
    return await _run(claims_of(request).desk.prepare_coverage, signed)


@router.post("/intake", summary="Fetch, check and adjudicate a claim (insurer's claims officer)",
             openapi_extra=body(IntakeBody), response_model=None,
             responses={**ok(IntakeAnswer, "The adjudication and the claims.adjudicate payload to sign"),
                        **errors(400, 401, 403, 404, 409, 410, 413, 415, 500, 503, 504, flagged=(422, 502))})
async def intake(request: Request) -> JSONResponse:
    """The insurer's node hands the officer's signed read to the provider's gateway (consent for HPAYMT
    checked, the read audited in the patient's log before release), checks the claim against its
    commitment and fingerprints and the encounter against its anchor, adjudicates, and answers the
    `claims.adjudicate` payload. A claim that does not match is refused with the flag to record."""
    try:
        parsed = _validated(IntakeBody, await _doc(request, MAX_REQUEST_BYTES))
    except LedgerError as exc:
        return _error(exc)
    return await _run(claims_of(request).desk.intake, parsed.claim, list(parsed.reads))


@router.post("/txs", summary="Submit a prepared claims transaction", openapi_extra=body(CommitBody),
             response_model=None,
             responses={**ok(CommittedAnswer, "Committed (a receipt code other than 0: refused by the contract "
                                              "after its documents were anchored)"),
                        **errors(400, 401, 403, 404, 409, 413, 415, 422, 500, 503, 504)})
async def commit(request: Request) -> JSONResponse:
    """`claims.submit`, `claims.register_coverage`, `claims.update_coverage` or `claims.adjudicate`,
    signed over the payload this node prepared: checked against committed state (a refusal writes
    nothing), its documents stored and anchored as records of the patient, then submitted."""
    import hashlib

    try:
        parsed = _validated(CommitBody, await _doc(request, MAX_REQUEST_BYTES * 4))
    except LedgerError as exc:
        return _error(exc)
    raw = bytes.fromhex(parsed.tx)
    tx_hash = hashlib.sha256(raw).hexdigest()
    try:
        done = await run_in_threadpool(claims_of(request).desk.commit, raw)
    except LedgerError as exc:
        return _error(exc, tx_hash)
    return JSONResponse({"tx_hash": done.tx_hash, "status": "committed", "height": done.height,
                         "receipt": receipt_json(done.receipt), "records": done.records})


# --- queries ------------------------------------------------------------------------------------------------

async def _query(request: Request, kind: str) -> JSONResponse:
    try:
        signed = await _signed(request, MAX_REQUEST_BYTES)
    except LedgerError as exc:
        return _error(exc)
    return await _run(claims_of(request).queries.answer, signed, kind)


@router.post("/status", summary="A claim's status (signed: patient, provider, insurer)",
             openapi_extra=signed_route(claims_requests.ClaimStatusQuery),
             response_model=None, responses={**ok(ClaimStatusView), **errors(400, 401, 403, 404, 409, 413, 415, 503)})
async def claim_status(request: Request) -> JSONResponse:
    """The claim as the ledger holds it — parties, coverage, encounter, status, flags — with every
    adjudication (outcome, line codes, rule versions, commitments, the records behind them), payment
    and appeal. Never a code, diagnosis or amount."""
    return await _query(request, "claims.status")


@router.post("/list", summary="A patient's claims (signed)",
             openapi_extra=signed_route(claims_requests.PatientClaimsQuery), response_model=None,
             responses={**ok(ClaimList), **errors(400, 401, 409, 413, 415, 503)})
async def claim_list(request: Request) -> JSONResponse:
    """All of them to the patient or a delegate; a provider's or insurer's officer sees its organisation's."""
    return await _query(request, "claims.list")


@router.post("/flags", summary="An insurer's flag feed (signed)",
             openapi_extra=signed_route(claims_requests.FlagsQuery), response_model=None,
             responses={**ok(FlagFeed), **errors(400, 401, 403, 409, 413, 415, 503)})
async def claim_flags(request: Request) -> JSONResponse:
    """Phantom claims, duplicates (across payers too), content and encounter mismatches, in commit order."""
    return await _query(request, "claims.flags")


@router.post("/coverages", summary="A patient's coverages (signed)",
             openapi_extra=signed_route(claims_requests.CoveragesQuery),
             response_model=None, responses={**ok(CoverageList), **errors(400, 401, 409, 413, 415, 503)})
async def coverages(request: Request) -> JSONResponse:
    """The patient's coverages (plan, period, payer order, status); an insurer's officers see their own."""
    return await _query(request, "claims.coverages")


@router.post("/eligibility", summary="Eligibility: FHIR CoverageEligibilityResponse (signed)",
             openapi_extra=signed_route(claims_requests.EligibilityQuery), response_model=None,
             responses={**ok(EligibilityAnswer), **errors(400, 401, 403, 409, 413, 415, 422, 503)})
async def claim_eligibility(request: Request) -> JSONResponse:
    """Is the patient covered on that day (default today), by whom first, with each plan's benefits."""
    return await _query(request, "claims.eligibility")


# --- rule data --------------------------------------------------------------------------------------------------

OrgPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9.-]{1,62}$", description="Organisation id")]
NamePath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


@router.get("/plans/{insurer}/{plan}", summary="A plan's versions (benefit rules)", response_model=None,
            responses={**ok(PlanVersions), **errors(400, 404)})
def get_plan(request: Request, insurer: OrgPath, plan: NamePath) -> JSONResponse:
    """Every version of an insurer's plan with its rules document and digest (plans are not PHI)."""
    versions = plan_versions(node_of(request).store.view(), insurer, plan)
    if not versions:
        raise not_found(f"plan {plan!r} of {insurer!r}")
    return JSONResponse({"insurer": insurer, "plan": plan, "versions": [v.to_json() for v in versions]})


@router.get("/tables/{name}", summary="An edit table's versions and votes", response_model=None,
            responses={**ok(TableVersions), **errors(400, 404)})
def get_table(request: Request, name: NamePath) -> JSONResponse:
    """Every version of an edit table: effective day, source, digest and the consortium's vote."""
    view = node_of(request).store.view()
    versions = [TableRecord.from_json(doc).to_json() for _, doc in view.scan(table_prefix(name))]
    if not versions:
        raise not_found(f"edit table {name!r}")
    return JSONResponse({"name": name, "versions": versions})
