"""Clinical trials over HTTP: registrations and their history, the FHIR export, protocol versions,
sites, the anchor tree and per-visit proofs, re-consent, safety deadlines, results and their flags.

Every route reads committed state and is open to any caller of the node's API: a trial's
registration, protocol, sites, safety reports and results are public to members by design, and
subjects appear only under per-trial pseudonyms. Writes are ordinary transactions (``POST
/v1/txs``, docs/trials.md); the case-report data stay in the sites' vaults, anchored only.

Report states of SUSARs (``/safety``) are derived at the latest committed block's time: no block
needs producing for a deadline to pass. ``as_of_ms`` asks at another time (after the latest block:
what will be overdue if no report commits before it).

The read models are :mod:`careledger.trials.views`; the response shapes :mod:`.trials_schemas`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from careledger.api import schemas
from careledger.api import trials_schemas as ts
from careledger.api.common import node_of
from careledger.api.errors import LedgerRoute
from careledger.api.services import NodeContext, Services, services_of
from careledger.node.engine import Engine
from careledger.trials import views
from careledger.trials.anchor_index import AnchorIndex

router = APIRouter(prefix="/v1/trials", tags=["trials"], route_class=LedgerRoute)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$"
TrialPath = Annotated[str, Path(pattern=ID_PATTERN, description="Trial id (`trl-…`)")]
SubjectPath = Annotated[str, Path(pattern=r"^sp-[0-9a-f]{32}$", description="Subject pseudonym (`sp-…`)")]
VisitPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$", description="Visit id")]
AsOf = Annotated[int | None, Query(ge=0, le=2**53 - 1, description="Derive report states at this time (ms since "
                                   "the epoch); default: the latest committed block's time.")]


@dataclass
class TrialsServices:
    """What the routes keep between requests: the anchor trees rebuilt for proofs."""

    anchors: AnchorIndex


def start(context: NodeContext, services: Services) -> None:
    """The anchor index (trees are rebuilt from committed state on first demand, per trial)."""
    services.add(TrialsServices(AnchorIndex()))


TRIAL_ERRORS = schemas.errors(400, 404, 500)
"""What a route about one trial can answer besides 200: a malformed id or parameter, an unknown trial
(or thing of it), a node fault."""
PROOF_ERRORS = schemas.errors(400, 404, 500, 503)
QUERY_ERRORS = schemas.errors(400, 500)
LIST_ERRORS = schemas.errors(500)


def _ok(model: type[Any], description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "description": description}}


async def _answer(fn: Callable[..., dict[str, Any]], *args: Any) -> JSONResponse:
    """Run a read model in a worker thread (it reads SQLite) and answer its document."""
    return JSONResponse(await run_in_threadpool(fn, *args))


def _latest(node: Engine) -> tuple[int, int]:
    """(height, time) of the latest committed block (genesis time at height 0)."""
    status = node.status()
    return int(status["height"]), int(status["latest_block_time_ms"])


@router.get("", summary="Registered trials", response_model=None,
            responses=_ok(ts.TrialList, "Every registered trial, in id order") | LIST_ERRORS)
async def list_trials(request: Request) -> JSONResponse:
    """Sponsor, public title, recruitment status, enrolment against target, lock and results of every trial."""
    node = node_of(request)
    return await _answer(views.trial_list, node.store.view(), node.head.height)


@router.get("/safety/overdue", summary="Overdue SUSAR reports across trials (regulator)", response_model=None,
            responses=_ok(ts.SafetyView, "SUSARs with a report overdue, every trial") | QUERY_ERRORS)
async def overdue(request: Request, as_of_ms: AsOf = None) -> JSONResponse:
    """Every SUSAR whose expedited report (ICH E2A: 7 days for fatal or life-threatening, then the complete
    report by day 15; 15 days otherwise) is overdue at the latest committed block's time, in every trial."""
    node = node_of(request)
    height, latest = _latest(node)

    def answer() -> dict[str, Any]:
        doc = views.safety(node.store.view(), None, latest if as_of_ms is None else as_of_ms, latest, height)
        doc["susars"] = [s for s in doc["susars"] if s["overdue"]]
        return doc

    return await _answer(answer)


@router.get("/{trial}", summary="A trial's registration and status", response_model=None,
            responses=_ok(ts.RegistrationView, "The WHO data set as it stands, the sponsor, the allocation "
                                 "commitment and the trial's status") | TRIAL_ERRORS)
async def get_registration(request: Request, trial: TrialPath) -> JSONResponse:
    """The current registration version (every WHO item but 1, 2 and 23, which the ledger gives) and the
    trial's status: recruitment, enrolment, protocol and re-consent versions, next allocation slots, lock."""
    node = node_of(request)
    return await _answer(views.registration, node.store.view(), trial, node.head.height)


@router.get("/{trial}/registrations", summary="Registration history and the COMPare baseline", response_model=None,
            responses=_ok(ts.RegistrationHistory, "Every registration version and the baseline") | TRIAL_ERRORS)
async def get_registrations(request: Request, trial: TrialPath) -> JSONResponse:
    """Every registration version, oldest first, each with its block, signer and reason, and the
    baseline the results are checked against: the last version before the first enrolment's block."""
    return await _answer(views.registration_history, node_of(request).store.view(), trial)


@router.get("/{trial}/research-study", summary="The registration as FHIR ResearchStudy", response_model=None,
            responses=_ok(ts.FhirResource, "A FHIR R4 ResearchStudy carrying all 24 WHO items") | TRIAL_ERRORS)
async def get_research_study(request: Request, trial: TrialPath) -> JSONResponse:
    """The registration exported as FHIR R4 ``ResearchStudy`` (validated with the fhir.resources R4B model):
    WHO items without an R4 element travel in the extensions listed in docs/trials.md."""
    node = node_of(request)
    return await _answer(views.research_study, node.store.view(), node.chain.chain_id, trial)


@router.get("/{trial}/protocols", summary="Protocol versions", response_model=None,
            responses=_ok(ts.ProtocolList, "Every protocol version") | TRIAL_ERRORS)
async def get_protocols(request: Request, trial: TrialPath) -> JSONResponse:
    """Every protocol version: the document's and consent form's SHA-256, the reason, whether re-consent
    was required, and who filed it when."""
    return await _answer(views.protocols, node_of(request).store.view(), trial)


@router.get("/{trial}/sites", summary="Sites and investigators", response_model=None,
            responses=_ok(ts.SiteList, "Every site") | TRIAL_ERRORS)
async def get_sites(request: Request, trial: TrialPath) -> JSONResponse:
    """Every site: the member organisation, its status, its ethics approval and its investigators."""
    return await _answer(views.sites, node_of(request).store.view(), trial)


@router.get("/{trial}/anchors", summary="The anchor tree's root and the lock", response_model=None,
            responses=_ok(ts.AnchorsView, "Size and root now, and the lock") | TRIAL_ERRORS)
async def get_anchors(request: Request, trial: TrialPath) -> JSONResponse:
    """The trial's anchor tree as the ledger holds it (its size and RFC 6962 root) and the database lock."""
    node = node_of(request)
    return await _answer(views.anchors, node.store.view(), trial, node.head.height)


@router.get("/{trial}/anchors/{subject}/{visit}", summary="A visit's inclusion proof", response_model=None,
            responses=_ok(ts.AnchorProofView, "The visit's leaf and its audit path") | PROOF_ERRORS)
async def get_anchor_proof(request: Request, trial: TrialPath, subject: SubjectPath, visit: VisitPath,
                           version: Annotated[int | None, Query(ge=1, le=9999, description="The visit version "
                                                                "(default: the latest)")] = None,
                           size: Annotated[int | None, Query(ge=1, le=2**53 - 1, description="Prove in the tree of "
                                                             "this many leaves (default: the locked tree, else the "
                                                             "tree now)")] = None) -> JSONResponse:
    """The RFC 9162 audit path of one anchored visit version, against the locked root (or the tree now,
    or of ``size`` leaves). The site rebuilds the leaf from the commitments of what its vault holds: a
    datum changed after anchoring no longer reaches the root. The visit's data never leave the vault."""
    node = node_of(request)
    index = services_of(request).get(TrialsServices).anchors
    return await _answer(lambda: index.prove(node.store.view(), trial, subject, visit, version, size).to_json())


@router.get("/{trial}/reconsent", summary="Subjects awaiting re-consent", response_model=None,
            responses=_ok(ts.ReconsentList, "Who must re-consent before more visits") | TRIAL_ERRORS)
async def get_reconsent(request: Request, trial: TrialPath) -> JSONResponse:
    """Enrolled subjects whose consent predates the last amendment that required re-consent; their visit
    data are refused (5028) until they consent to the current protocol."""
    return await _answer(views.reconsent, node_of(request).store.view(), trial)


@router.get("/{trial}/safety", summary="SUSARs, deadlines and overdue reports", response_model=None,
            responses=_ok(ts.SafetyView, "Every SUSAR of the trial and its report states") | TRIAL_ERRORS)
async def get_safety(request: Request, trial: TrialPath, as_of_ms: AsOf = None) -> JSONResponse:
    """Every SUSAR of the trial with its ICH E2A deadlines and the state of each report (pending, overdue,
    on time, late), derived at the latest committed block's time."""
    node = node_of(request)
    height, latest = _latest(node)
    return await _answer(views.safety, node.store.view(), trial, latest if as_of_ms is None else as_of_ms, latest,
                         height)


@router.get("/{trial}/results", summary="Results and outcome-switching flags", response_model=None,
            responses=_ok(ts.ResultsView, "The summary results and every flag") | TRIAL_ERRORS)
async def get_results(request: Request, trial: TrialPath) -> JSONResponse:
    """The summary results (WHO item 23), the baseline they were checked against, and every
    outcome-switching flag, declared or silent; 404 NOT_FOUND before results."""
    return await _answer(views.results, node_of(request).store.view(), trial)


@router.get("/{trial}/subjects/{subject}", summary="A subject's enrolment and consent", response_model=None,
            responses=_ok(ts.SubjectView, "Enrolment (allocation) and consent of one pseudonym") | TRIAL_ERRORS)
async def get_subject(request: Request, trial: TrialPath, subject: SubjectPath) -> JSONResponse:
    """The subject's enrolment (site, stratum, slot, sealed allocation; the arm once known) and consent (the
    protocol version consented to, and whether a re-consent is due). Subjects are per-trial pseudonyms."""
    return await _answer(views.subject, node_of(request).store.view(), trial, subject)


@router.get("/{trial}/subjects/{subject}/consent", summary="A subject's consent as FHIR Consent",
            response_model=None,
            responses=_ok(ts.FhirResource, "A FHIR R4 Consent (research, CLINTRCH)") | TRIAL_ERRORS)
async def get_consent_fhir(request: Request, trial: TrialPath, subject: SubjectPath) -> JSONResponse:
    """The subject's consent as FHIR ``Consent``: scope research, purpose CLINTRCH, actor the
    ResearchStudy, the protocol version covered as ``policy.uri``, the signed form's hash."""
    node = node_of(request)
    return await _answer(views.consent_fhir, node.store.view(), node.chain.chain_id, trial, subject)


__all__ = ["TrialsServices", "router", "start"]
