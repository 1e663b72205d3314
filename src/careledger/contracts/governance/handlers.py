"""The governance contract's transactions: consortium changes pass with the votes of more than 2/3 of
the active organisations.

A proposal's id derives from the transaction that opened it (``gp-`` + the first 24 hex digits of its
hash). The proposing organisation votes yes. Each active organisation votes once, through any of its
admins. A proposal is *executed* in the transaction whose vote takes the yes votes above 2/3 of the
active organisations, *rejected* once that can no longer happen, and expires after
``params.proposal_ttl_blocks``. If the consortium changed since it opened so that the action no longer
applies, the passing vote closes it as *failed* with the refusal's code.

Validator changes are emitted as ``validator_update`` events, which the CometBFT engine turns into
ABCI validator updates.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, TypedDict

from pydantic import Field

from careledger.contracts import identity
from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.governance.actions import (
    Action,
    AddOrganisation,
    AnyAction,
    RemoveOrganisation,
    ScheduleRules,
    SetGs1Prefixes,
    SetOrgRoles,
    SetValidator,
)
from careledger.contracts.governance.layout import (
    ProposalRecord,
    ValidatorRecord,
    delete_validator,
    get_proposal,
    get_validator,
    put_proposal,
    put_validator,
    validators,
)
from careledger.contracts.governance.rules import execute_schedule, validate_schedule
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay


class Propose(Payload):
    action: Action
    title: Annotated[str, Field(min_length=1, max_length=200)]


class Vote(Payload):
    proposal: Annotated[str, Field(pattern=r"^gp-[0-9a-f]{24}$")]
    approve: bool


def validate_action(state: Overlay, ctx: TxContext, action: AnyAction) -> None:
    """State checks an action must pass both when proposed and when executed.

    Raises ALREADY_EXISTS, PROPOSAL_INVALID (repeated admin keys; removing the last organisation or
    validator), KEY_IN_USE (an admin or validator key taken), PREFIX_OVERLAP (GS1 Company Prefixes that
    repeat or overlap another organisation's), ORG_UNKNOWN, ORG_INACTIVE or NOT_FOUND (removing a validator
    that does not exist).
    """
    if isinstance(action, ScheduleRules):
        validate_schedule(state, ctx, action)
        return
    if isinstance(action, AddOrganisation):
        org = action.organisation
        if identity.get_org(state, org.id) is not None:
            raise TxFailed(f"organisation {org.id!r} already exists", Code.ALREADY_EXISTS)
        if len(set(org.admins)) != len(org.admins):
            raise TxFailed("admin keys repeat", Code.PROPOSAL_INVALID)
        for admin in org.admins:
            if state.has(identity.key_key(admin)):
                raise TxFailed("an admin key is already registered", Code.KEY_IN_USE)
        identity.check_prefixes_free(state, org.id, org.gs1_company_prefixes)
    elif isinstance(action, RemoveOrganisation):
        identity.require_org(state, action.org)
        if len(identity.active_org_ids(state)) <= 1:
            raise TxFailed("the last organisation cannot be removed", Code.PROPOSAL_INVALID)
        if not [pub for pub, v in validators(state) if v.org != action.org]:
            raise TxFailed("removing this organisation would leave no validator", Code.PROPOSAL_INVALID)
    elif isinstance(action, SetOrgRoles):
        identity.require_org(state, action.org)
    elif isinstance(action, SetGs1Prefixes):
        identity.require_org(state, action.org)
        identity.check_prefixes_free(state, action.org, action.prefixes)
    else:
        identity.require_org(state, action.org)
        current = get_validator(state, action.pub_key)
        if current is not None and current.org != action.org:
            raise TxFailed("that validator key belongs to another organisation", Code.KEY_IN_USE)
        if action.power == 0:
            if current is None:
                raise TxFailed("no such validator", Code.NOT_FOUND)
            if len(validators(state)) <= 1:
                raise TxFailed("the last validator cannot be removed", Code.PROPOSAL_INVALID)


def execute_action(state: Overlay, ctx: TxContext, action: AnyAction) -> None:
    """Carry out a passed (and re-validated) action."""
    height = ctx.env.height
    if isinstance(action, ScheduleRules):
        execute_schedule(state, ctx, action)
        return
    if isinstance(action, AddOrganisation):
        identity.write_organisation(state, action.organisation, height)
        ctx.emit("organisation_added", org=action.organisation.id)
    elif isinstance(action, RemoveOrganisation):
        rec = identity.require_org(state, action.org)
        identity.put_org(state, replace(rec, status="removed", removed_at=height))
        for pub, v in validators(state):
            if v.org == action.org:
                delete_validator(state, pub)
                ctx.emit("validator_update", pub_key=pub, power=0)
        ctx.emit("organisation_removed", org=action.org)
    elif isinstance(action, SetOrgRoles):
        rec = identity.require_org(state, action.org)
        identity.put_org(state, replace(rec, roles=tuple(action.roles)))
        ctx.emit("organisation_roles_changed", org=action.org, roles=list(action.roles))
    elif isinstance(action, SetGs1Prefixes):
        rec = identity.require_org(state, action.org)
        identity.put_org(state, replace(rec, gs1_company_prefixes=tuple(action.prefixes)))
        ctx.emit("organisation_prefixes_changed", org=action.org, prefixes=list(action.prefixes))
    elif isinstance(action, SetValidator):
        if action.power == 0:
            delete_validator(state, action.pub_key)
        else:
            put_validator(state, action.pub_key, ValidatorRecord(action.org, action.power))
        ctx.emit("validator_update", pub_key=action.pub_key, power=action.power)


def tally(state: Overlay, ctx: TxContext, proposal: ProposalRecord) -> ProposalRecord:
    """The proposal after counting the active organisations' votes: executed (the action applied),
    failed (it no longer applies), rejected, or still open."""
    orgs = identity.active_org_ids(state)
    yes = [o for o in proposal.yes if o in orgs]
    no = [o for o in proposal.no if o in orgs]
    if 3 * len(yes) > 2 * len(orgs):
        try:
            validate_action(state, ctx, proposal.action)
        except TxFailed as exc:  # the consortium changed since the proposal opened: close it as failed
            ctx.emit("proposal_failed", proposal=proposal.id, code=int(exc.code))
            return replace(proposal, status="failed", closed=ctx.env.height, failure_code=int(exc.code))
        execute_action(state, ctx, proposal.action)
        ctx.emit("proposal_executed", proposal=proposal.id)
        return replace(proposal, status="executed", closed=ctx.env.height)
    if 3 * (len(orgs) - len(no)) <= 2 * len(orgs):
        ctx.emit("proposal_rejected", proposal=proposal.id)
        return replace(proposal, status="rejected", closed=ctx.env.height)
    return proposal


def _authorize_admin(state: Overlay, ctx: TxContext, p: object) -> None:
    if ctx.signer.kind != "admin" or ctx.signer.org is None:
        raise TxFailed("only an organisation admin may take part in governance", Code.UNAUTHORISED)


class ProposeResult(TypedDict):
    proposal: str
    status: str


def apply_propose(state: Overlay, ctx: TxContext, p: Propose) -> ProposeResult:
    """Open a proposal (the proposer's organisation votes yes; it may pass at once). Raises what
    :func:`validate_action` raises."""
    validate_action(state, ctx, p.action)
    org = ctx.signer.org
    assert org is not None
    proposal = ProposalRecord(id="gp-" + ctx.tx_hash[:24], title=p.title, action=p.action, proposer_org=org,
                              opened=ctx.env.height, expires=ctx.env.height + ctx.params["proposal_ttl_blocks"],
                              status="open", yes=(org,), no=())
    ctx.emit("proposal_opened", proposal=proposal.id, kind=p.action.kind)
    proposal = tally(state, ctx, proposal)
    put_proposal(state, proposal)
    return {"proposal": proposal.id, "status": proposal.status}


class VoteResult(TypedDict):
    proposal: str
    status: str
    yes: int
    no: int


def apply_vote(state: Overlay, ctx: TxContext, p: Vote) -> VoteResult:
    """Cast the signer's organisation's vote. Raises PROPOSAL_UNKNOWN, PROPOSAL_CLOSED (closed or expired)
    or ALREADY_VOTED."""
    proposal = get_proposal(state, p.proposal)
    if proposal is None:
        raise TxFailed(f"no proposal {p.proposal}", Code.PROPOSAL_UNKNOWN)
    if proposal.status != "open":
        raise TxFailed(f"proposal is {proposal.status}", Code.PROPOSAL_CLOSED)
    if ctx.env.height > proposal.expires:
        raise TxFailed("proposal has expired", Code.PROPOSAL_CLOSED)
    org = ctx.signer.org
    assert org is not None
    if org in proposal.yes or org in proposal.no:
        raise TxFailed(f"{org!r} has already voted", Code.ALREADY_VOTED)
    if p.approve:
        proposal = replace(proposal, yes=tuple(sorted([*proposal.yes, org])))
    else:
        proposal = replace(proposal, no=tuple(sorted([*proposal.no, org])))
    ctx.emit("proposal_vote", proposal=p.proposal, org=org, approve=p.approve)
    proposal = tally(state, ctx, proposal)
    put_proposal(state, proposal)
    return {"proposal": p.proposal, "status": proposal.status, "yes": len(proposal.yes), "no": len(proposal.no)}


HANDLERS: list[Handler[Any]] = [
    Handler("governance.propose", 1, Propose, apply_propose, _authorize_admin,
            summary="An organisation admin proposes a consortium change; their organisation votes yes."),
    Handler("governance.vote", 1, Vote, apply_vote, _authorize_admin,
            summary="An organisation admin casts the organisation's vote on a proposal."),
]
