"""Governance queries: proposals and the validator set (``governance/...`` keys)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from careledger.api import schemas
from careledger.api.common import node_of, not_found
from careledger.api.errors import LedgerRoute
from careledger.contracts import governance

router = APIRouter(prefix="/v1/governance", tags=["governance"], route_class=LedgerRoute)

ProposalStatus = Literal["open", "executed", "rejected", "failed", "expired"]


def effective(proposal: governance.ProposalRecord, height: int) -> dict[str, Any]:
    """The proposal as the next block would see it: an open proposal no longer accepts votes once the
    committed height reaches its expiry, and is shown as ``expired``."""
    doc = proposal.to_json()
    if proposal.status == "open" and height >= proposal.expires:
        doc["status"] = "expired"
    return doc


@router.get("/proposals", summary="List proposals", response_model=None,
            responses={200: {"model": schemas.ProposalList, "description": "Proposals ordered by id"},
                       **schemas.errors(400)})
def list_proposals(request: Request, status: Annotated[ProposalStatus | None, Query(
        description="Only proposals with this status")] = None) -> JSONResponse:
    """Every proposal with its action, votes and status; `?status=open` for those still taking votes."""
    node = node_of(request)
    height = node.head.height
    proposals = [effective(p, height) for p in governance.proposals(node.store.view())]
    if status is not None:
        proposals = [p for p in proposals if p["status"] == status]
    return JSONResponse({"proposals": proposals})


@router.get("/proposals/{proposal_id}", summary="One proposal", response_model=None,
            responses={200: {"model": schemas.Proposal, "description": "The proposal"}, **schemas.errors(400, 404)})
def get_proposal(request: Request, proposal_id: Annotated[str, Path(
        pattern=r"^gp-[0-9a-f]{24}$", description="Proposal id")]) -> JSONResponse:
    """A proposal's action, proposer, votes, status and expiry height."""
    node = node_of(request)
    height = node.head.height
    rec = governance.get_proposal(node.store.view(), proposal_id)
    if rec is None:
        raise not_found(f"proposal {proposal_id}")
    return JSONResponse(effective(rec, height))


@router.get("/validators", summary="The validator set", response_model=None,
            responses={200: {"model": schemas.ValidatorList, "description": "Validators with power"}})
def list_validators(request: Request) -> JSONResponse:
    """The current validators: public key, organisation and voting power."""
    return JSONResponse({"validators": governance.validator_set_json(node_of(request).store.view())})
