"""Research data sharing over HTTP: the study registry, releases, linkage, aggregate answers, the research log.

Reads of committed state, open to any caller of the node's API (the registry and the anchors are
visible to every member by design; subjects appear only as per-study pseudonyms, and a release's
consent snapshot is never listed):

* ``GET  /v1/research/studies``                    the registry (``kind``, ``status`` filters);
* ``GET  /v1/research/studies/{study}``            a study, its versions and releases;
* ``GET  /v1/research/releases/{release}``         a release's anchor;
* ``GET  /v1/research/queries/{query}``            an aggregate query and every custodian's anchored answer.

The gateway of the custodians this node hosts (:class:`careledger.research.gateway.ResearchGateway`),
each route taking a signed request (docs/protocol.md section 4.3: the ``Authorization:
CareLedger-Request …`` header) whose body is its research kind (:mod:`careledger.research.requests`),
except the linkage, which is signed by the patient's two keys:

* ``POST /v1/research/linkage``                    a patient hands a custodian her linkage statement;
* ``POST /v1/research/releases``                   a data steward has a release built, anchored and sealed
  (a refusal carries the kernel's ``report``);
* ``POST /v1/research/packages``                   the recipient fetches a release's sealed package;
* ``POST /v1/research/answers``                    a data steward has the custodian answer a query now;
* ``POST /v1/research/results``                    a researcher of the sponsor fetches a custodian's answer;
* ``POST /v1/research/log``                        a study pseudonym's research log (study key, or the
  patient or her delegate with her linkage statement).

Registrations, consents, revocations and queries are ordinary transactions (``POST /v1/txs``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from careledger.api import research_schemas as rs
from careledger.api.common import (
    BODY_REFUSALS,
    SIGNED_REQUEST_REFUSALS,
    node_of,
    read_body,
    refusals,
    signed_request,
    signed_route,
)
from careledger.api.errors import LedgerRoute, error_response
from careledger.api.records import RecordsServices
from careledger.api.schemas import errors
from careledger.api.services import NodeContext, Services, services_of
from careledger.api.status import http_status
from careledger.core.errors import Code, LedgerError
from careledger.research import views
from careledger.research.gateway import ResearchGateway
from careledger.research.release import ReleaseRefused
from careledger.research.requests import AnswerRequest, LogRequest, PackageRequest, ReleaseRequest, ResultsRequest
from careledger.vault.requests import SignedRequest

MAX_REQUEST_BYTES = 64 * 1024

router = APIRouter(prefix="/v1/research", tags=["research"], route_class=LedgerRoute)

StudyPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$", description="Study id (`study-…`)")]
ReleasePath = Annotated[str, Path(pattern=r"^rel-[0-9a-f]{24}(-[0-9]{1,4})?$", description="Release id (`rel-…`)")]
QueryPath = Annotated[str, Path(pattern=r"^rq-[0-9a-f]{24}(-[0-9]{1,4})?$", description="Query id (`rq-…`)")]
SIGNED = (*BODY_REFUSALS, *SIGNED_REQUEST_REFUSALS, Code.NODE_UNAVAILABLE, Code.VAULT_NOT_HOSTED,
          Code.UNKNOWN_SIGNER, Code.SIGNER_REVOKED)
"""What every gateway route taking a signed request can refuse with before its own checks: the body, the
signed request, no custodian vault hosted here, a requester who is not an active member."""
ANCHORING = (Code.NODE_UNAVAILABLE, Code.MEMPOOL_FULL, Code.TIMEOUT)
"""What the gateway's own transactions can meet on their way to a block."""
RELEASE_REFUSALS = (Code.NOT_RELEASE_CUSTODIAN, Code.STUDY_UNKNOWN, Code.STUDY_CLOSED, Code.RELEASE_RECIPIENT_INVALID,
                    Code.DEID_IDENTIFIER_LEFT, Code.DEID_K_NOT_MET, Code.DEID_L_NOT_MET, Code.DEID_EMPTY_RELEASE,
                    Code.RESEARCH_CONSENT_NOT_COVERING, *ANCHORING)
PACKAGE_REFUSALS = (Code.RELEASE_UNKNOWN, Code.UNAUTHORISED)
ANSWER_REFUSALS = (Code.NOT_RELEASE_CUSTODIAN, Code.QUERY_UNKNOWN, Code.STUDY_UNKNOWN, Code.QUERY_ANSWERED,
                   Code.STUDY_CLOSED, *ANCHORING)
RESULTS_REFUSALS = (Code.QUERY_UNKNOWN, Code.NOT_STUDY_SPONSOR, Code.NOT_FOUND)
LOG_REFUSALS = (*BODY_REFUSALS, *SIGNED_REQUEST_REFUSALS, Code.UNKNOWN_SIGNER, Code.SIGNER_REVOKED,
                Code.VAULT_NOT_HOSTED, Code.LINKAGE_INVALID, Code.NOT_PATIENT_OR_DELEGATE)
LINKAGE_REFUSALS = (*BODY_REFUSALS, Code.REQUEST_MALFORMED, Code.VAULT_NOT_HOSTED, Code.LINKAGE_UNKNOWN,
                    Code.LINKAGE_INVALID)


@dataclass
class ResearchServices:
    """The research gateway over the vaults this node hosts."""

    gateway: ResearchGateway


def start(context: NodeContext, services: Services) -> None:
    """Open the research gateway over the records gateway (``records.start`` runs first), subscribed to
    commits so that every custodian hosted here answers each committed query; closed at shutdown."""
    research = ResearchGateway.open(services.get(RecordsServices).gateway)
    services.add(ResearchServices(research), close=research.close)


def research_of(request: Request) -> ResearchGateway:
    return services_of(request).get(ResearchServices).gateway


def _responses(model: type[Any], description: str, *declared: dict[int | str, dict[str, Any]]
               ) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route: its 200 and the error statuses ``declared`` (``errors(...)``)."""
    out: dict[int | str, dict[str, Any]] = {200: {"model": model, "description": description}}
    for entries in declared:
        out.update(entries)
    return out


async def _read(fn: Callable[..., dict[str, Any]], *args: Any) -> JSONResponse:
    """Run a read model in a worker thread (ledger views are per thread) and answer its document."""
    return JSONResponse(await run_in_threadpool(fn, *args))


async def _signed(request: Request) -> SignedRequest:
    """The signed request as received (media type and size checked first, the body read whole)."""
    return signed_request(request, await read_body(request, MAX_REQUEST_BYTES))


async def _body(request: Request) -> Any:
    """The JSON body (media type and size checked first); REQUEST_MALFORMED when it is not JSON."""
    raw = await read_body(request, MAX_REQUEST_BYTES)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise LedgerError("the body is not JSON", Code.REQUEST_MALFORMED) from None


# --- the registry -----------------------------------------------------------------------------------------

@router.get("/studies", summary="The study registry", response_model=None,
            responses=_responses(rs.StudyList, "Every study (data-sharing studies and trials), by id",
                                 errors(400, 500)))
async def list_studies(request: Request,
                       kind: Annotated[str | None, Query(pattern=r"^(data|trial)$")] = None,
                       status: Annotated[str | None, Query(pattern=r"^(active|closed)$")] = None) -> JSONResponse:
    """Sponsor, title, category, purpose, period, version and status of every registered study."""
    return await _read(views.study_list, node_of(request).store.view(), kind, status)


@router.get("/studies/{study}", summary="A study, its versions and releases", response_model=None,
            responses=_responses(rs.StudyDetail, "The study as it stands", errors(400, 404, 500)))
async def get_study(request: Request, study: StudyPath,
                    version: Annotated[int | None, Query(ge=1, le=999_999, description="This version instead of "
                                                         "the current one")] = None) -> JSONResponse:
    """The current version (requested data, cohort, anonymity requirements), every version and every
    release anchored for it; 404 STUDY_UNKNOWN."""
    return await _read(views.study_view, node_of(request).store.view(), study, version)


@router.get("/releases/{release}", summary="A release's anchor", response_model=None,
            responses=_responses(rs.ReleaseAnchor, "Roots, rules, k, l, counts and status", errors(400, 404, 500)))
async def get_release(request: Request, release: ReleasePath) -> JSONResponse:
    """What the ledger anchored for a release: what the recipient's verification compares with; 404
    RELEASE_UNKNOWN."""
    return await _read(views.release_view, node_of(request).store.view(), release)


@router.get("/queries/{query}", summary="An aggregate query and its anchored answers", response_model=None,
            responses=_responses(rs.QueryDetail, "The query and every custodian's answer anchor",
                                 errors(400, 404, 500)))
async def get_query(request: Request, query: QueryPath) -> JSONResponse:
    """The canonical query spec, its hash, and each custodian's anchored answer (hash, cells, suppressed
    cells, contributors); 404 QUERY_UNKNOWN."""
    return await _read(views.query_view, node_of(request).store.view(), query)


# --- the gateway ------------------------------------------------------------------------------------------

@router.post("/linkage", summary="Hand a custodian a linkage statement", response_model=None,
             openapi_extra=rs.body(rs.LinkageBody),
             responses=_responses(rs.LinkageAccepted, "The custodian now selects this study pseudonym",
                                  refusals(*LINKAGE_REFUSALS)))
async def linkage(request: Request) -> JSONResponse:
    """Body ``{"custodian", "statement"}``: the statement signed by the patient's registered key and her
    study key. 404 VAULT_NOT_HOSTED (ask the custodian's node) or LINKAGE_UNKNOWN (no active patient);
    422 LINKAGE_INVALID."""
    doc = await _body(request)
    if not isinstance(doc, dict) or set(doc) != {"custodian", "statement"} or not isinstance(doc["custodian"], str):
        raise LedgerError('the body is {"custodian", "statement"}', Code.REQUEST_MALFORMED)
    return await _read(research_of(request).link, doc["custodian"], doc["statement"])


@router.post("/releases", summary="Build, anchor and seal a release (data steward; signed)", response_model=None,
             openapi_extra=signed_route(ReleaseRequest),
             responses={**_responses(rs.ReleaseBuilt, "The anchored release and its signed report",
                                     refusals(*SIGNED, *RELEASE_REFUSALS)),
                        http_status(Code.DEID_K_NOT_MET): {  # the kernel's refusals and the contract's
                            "model": rs.ReleaseRefusal,
                            "description": "Refused: the kernel's checks (with a report of why) or the contract's "
                                           "rules"}})
async def build_release(request: Request) -> JSONResponse:
    """A signed ``research-release`` request from an admin or data steward of the custodian: the
    consenting patients' records, Safe Harbor, k-anonymity (and l), the files, the anchor (and its
    consent snapshot), the report signed and the files sealed to the recipient. A refusal of the
    kernel is 422 with ``report`` (which check, counts and paths, never values)."""
    signed = await _signed(request)
    try:
        return await _read(research_of(request).release, signed)
    except ReleaseRefused as exc:
        return error_response(exc, {"report": exc.report})


@router.post("/packages", summary="A release's sealed package (the recipient; signed)", response_model=None,
             openapi_extra=signed_route(PackageRequest),
             responses=_responses(rs.PackageView, "The package, encrypted to the recipient's key",
                                  refusals(*SIGNED, *PACKAGE_REFUSALS)))
async def package(request: Request) -> JSONResponse:
    """A signed ``research-package`` request from the release's recipient; 403 UNAUTHORISED for anyone
    else, 404 RELEASE_UNKNOWN when this node did not deliver it."""
    return await _read(research_of(request).package, await _signed(request))


@router.post("/answers", summary="Answer a query now (data steward; signed)", response_model=None,
             openapi_extra=signed_route(AnswerRequest),
             responses=_responses(rs.AnswerView, "The custodian's answer and its anchor",
                                  refusals(*SIGNED, *ANSWER_REFUSALS)))
async def answer(request: Request) -> JSONResponse:
    """A signed ``research-answer`` request from an admin or data steward of the custodian: its answer
    over its consenting patients (cells under 11 withheld), kept and anchored; the same answer again
    once anchored. The gateway also answers every committed query by itself."""
    return await _read(research_of(request).answer, await _signed(request))


@router.post("/results", summary="A custodian's answer to a query (the study's researchers; signed)",
             response_model=None, openapi_extra=signed_route(ResultsRequest),
             responses=_responses(rs.AnswerView, "The answer and the anchor its hash must match",
                                  refusals(*SIGNED, *RESULTS_REFUSALS)))
async def results(request: Request) -> JSONResponse:
    """A signed ``research-results`` request from an admin or researcher of the study's sponsor; 404
    NOT_FOUND until the custodian has answered."""
    return await _read(research_of(request).results, await _signed(request))


@router.post("/log", summary="A study pseudonym's research log (signed)", response_model=None,
             openapi_extra=signed_route(LogRequest),
             responses=_responses(rs.ResearchLog, "Its consents and the releases that included it",
                                  refusals(*LOG_REFUSALS)))
async def research_log(request: Request) -> JSONResponse:
    """A signed ``research-log`` request: by the study key alone (the node learns nothing else), or by
    the patient's registered key or her active delegate's with her linkage statement (the node then
    learns that the study pseudonym is hers)."""
    return await _read(research_of(request).log, await _signed(request))


__all__ = ["ResearchServices", "research_of", "router", "start"]
