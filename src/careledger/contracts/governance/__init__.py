"""Governance contract: consortium changes pass with the votes of more than 2/3 of organisations.

State::

    governance/proposal/<id>       {id, action, proposer_org, opened, expires, status, yes: [org], no: [org]}
    governance/validator/<pubkey>  {org, power}

A proposal's id derives from the transaction that opened it. The proposing organisation votes yes.
Each active organisation votes once, through any of its admins. A proposal is *executed* in the
transaction whose vote takes the yes votes above 2/3 of the active organisations, *rejected* once
that can no longer happen, and *expired* after ``params.proposal_ttl_blocks``.

Actions: ``add_organisation``, ``remove_organisation``, ``set_org_roles``, ``set_validator``
(power 0 removes a validator), ``schedule_rules`` (a rules version and the height it takes effect at:
:mod:`careledger.contracts.governance.rules`). Validator changes are emitted as ``validator_update``
events, which the CometBFT engine turns into ABCI validator updates.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from careledger.contracts import identity
from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.governance.rules import ScheduleRules, execute_schedule, validate_schedule
from careledger.core.errors import Code, TxFailed
from careledger.core.genesis import OrganisationDecl
from careledger.core.state import Overlay, StateReader
from careledger.core.types import OrgId, OrgRole, PublicKeyHex


def proposal_key(pid: str) -> str:
    return f"governance/proposal/{pid}"


def validator_key(pub: str) -> str:
    return f"governance/validator/{pub}"


# A new organisation is declared exactly as in the genesis file.
NewOrganisation = OrganisationDecl


class AddOrganisation(Payload):
    kind: Literal["add_organisation"]
    organisation: NewOrganisation


class RemoveOrganisation(Payload):
    kind: Literal["remove_organisation"]
    org: OrgId


class SetOrgRoles(Payload):
    kind: Literal["set_org_roles"]
    org: OrgId
    roles: Annotated[list[OrgRole], Field(min_length=1, max_length=8)]


class SetValidator(Payload):
    kind: Literal["set_validator"]
    org: OrgId
    pub_key: PublicKeyHex
    power: Annotated[int, Field(ge=0, le=1_000_000)]


Action = Annotated[AddOrganisation | RemoveOrganisation | SetOrgRoles | SetValidator | ScheduleRules,
                   Field(discriminator="kind")]


class Propose(Payload):
    action: Action
    title: Annotated[str, Field(min_length=1, max_length=200)]


class Vote(Payload):
    proposal: Annotated[str, Field(pattern=r"^gp-[0-9a-f]{24}$")]
    approve: bool


def active_orgs(state: StateReader | Overlay) -> list[str]:
    from careledger.core.codec import decode_trusted
    return [decode_trusted(v)["id"] for _, v in state.scan_raw("identity/org/")
            if decode_trusted(v)["status"] == "active"]


def validators(state: StateReader | Overlay) -> list[dict[str, Any]]:
    from careledger.core.codec import decode_trusted
    return [{"pub_key": k.rsplit("/", 1)[1], **decode_trusted(v)} for k, v in state.scan_raw("governance/validator/")]


def _validate_action(state: Overlay, ctx: TxContext, action: Any) -> None:
    """State checks an action must pass both when proposed and when executed."""
    if isinstance(action, ScheduleRules):
        validate_schedule(state, ctx, action)
    elif isinstance(action, AddOrganisation):
        org = action.organisation
        if identity.get_org(state, org.id) is not None:
            raise TxFailed(f"organisation {org.id!r} already exists", Code.ALREADY_EXISTS)
        if len(set(org.admins)) != len(org.admins):
            raise TxFailed("admin keys repeat", Code.PROPOSAL_INVALID)
        for admin in org.admins:
            if state.has(identity.key_key(admin)):
                raise TxFailed("an admin key is already registered", Code.KEY_IN_USE)
    elif isinstance(action, RemoveOrganisation):
        identity.require_org(state, action.org)
        if len(active_orgs(state)) <= 1:
            raise TxFailed("the last organisation cannot be removed", Code.PROPOSAL_INVALID)
        remaining = [v for v in validators(state) if v["org"] != action.org]
        if not remaining:
            raise TxFailed("removing this organisation would leave no validator", Code.PROPOSAL_INVALID)
    elif isinstance(action, SetOrgRoles):
        identity.require_org(state, action.org)
    elif isinstance(action, SetValidator):
        identity.require_org(state, action.org)
        current = state.get(validator_key(action.pub_key))
        if current is not None and current["org"] != action.org:
            raise TxFailed("that validator key belongs to another organisation", Code.KEY_IN_USE)
        if action.power == 0:
            if current is None:
                raise TxFailed("no such validator", Code.NOT_FOUND)
            if len(validators(state)) <= 1:
                raise TxFailed("the last validator cannot be removed", Code.PROPOSAL_INVALID)


def _execute(state: Overlay, ctx: TxContext, action: Any) -> None:
    height = ctx.env.height
    if isinstance(action, AddOrganisation):
        identity.write_organisation(state, action.organisation.model_dump(mode="json"), height)
        ctx.emit("organisation_added", org=action.organisation.id)
    elif isinstance(action, RemoveOrganisation):
        rec = identity.require_org(state, action.org)
        state.put(identity.org_key(action.org), {**rec, "status": "removed", "removed_at": height})
        for v in validators(state):
            if v["org"] == action.org:
                state.delete(validator_key(v["pub_key"]))
                ctx.emit("validator_update", pub_key=v["pub_key"], power=0)
        ctx.emit("organisation_removed", org=action.org)
    elif isinstance(action, SetOrgRoles):
        rec = identity.require_org(state, action.org)
        state.put(identity.org_key(action.org), {**rec, "roles": list(action.roles)})
        ctx.emit("organisation_roles_changed", org=action.org, roles=list(action.roles))
    elif isinstance(action, ScheduleRules):
        execute_schedule(state, ctx, action)
    elif isinstance(action, SetValidator):
        if action.power == 0:
            state.delete(validator_key(action.pub_key))
        else:
            state.put(validator_key(action.pub_key), {"org": action.org, "power": action.power})
        ctx.emit("validator_update", pub_key=action.pub_key, power=action.power)


def _tally(state: Overlay, ctx: TxContext, proposal: dict[str, Any], action: Any) -> dict[str, Any]:
    orgs = active_orgs(state)
    yes = [o for o in proposal["yes"] if o in orgs]
    no = [o for o in proposal["no"] if o in orgs]
    if 3 * len(yes) > 2 * len(orgs):
        try:
            _validate_action(state, ctx, action)
        except TxFailed as exc:  # the consortium changed since the proposal opened: close it as failed
            ctx.emit("proposal_failed", proposal=proposal["id"], code=int(exc.code))
            return {**proposal, "status": "failed", "closed": ctx.env.height, "failure_code": int(exc.code)}
        _execute(state, ctx, action)
        proposal = {**proposal, "status": "executed", "closed": ctx.env.height}
        ctx.emit("proposal_executed", proposal=proposal["id"])
    elif 3 * (len(orgs) - len(no)) <= 2 * len(orgs):
        proposal = {**proposal, "status": "rejected", "closed": ctx.env.height}
        ctx.emit("proposal_rejected", proposal=proposal["id"])
    return proposal


def _authorize_admin(state: Overlay, ctx: TxContext, p: Any) -> None:
    if ctx.signer.kind != "admin" or ctx.signer.org is None:
        raise TxFailed("only an organisation admin may take part in governance", Code.UNAUTHORISED)


def apply_propose(state: Overlay, ctx: TxContext, p: Propose) -> Any:
    _validate_action(state, ctx, p.action)
    pid = "gp-" + ctx.tx_hash[:24]
    org = ctx.signer.org
    assert org is not None
    proposal: dict[str, Any] = {
        "action": p.action.model_dump(mode="json"), "expires": ctx.env.height + ctx.params["proposal_ttl_blocks"],
        "id": pid, "no": [], "opened": ctx.env.height, "proposer_org": org, "status": "open", "title": p.title,
        "yes": [org],
    }
    ctx.emit("proposal_opened", proposal=pid, kind=p.action.kind)
    proposal = _tally(state, ctx, proposal, p.action)
    state.put(proposal_key(pid), proposal)
    return {"proposal": pid, "status": proposal["status"]}


def apply_vote(state: Overlay, ctx: TxContext, p: Vote) -> Any:
    proposal = state.get(proposal_key(p.proposal))
    if proposal is None:
        raise TxFailed(f"no proposal {p.proposal}", Code.PROPOSAL_UNKNOWN)
    if proposal["status"] != "open":
        raise TxFailed(f"proposal is {proposal['status']}", Code.PROPOSAL_CLOSED)
    if ctx.env.height > proposal["expires"]:
        raise TxFailed("proposal has expired", Code.PROPOSAL_CLOSED)
    org = ctx.signer.org
    if org in proposal["yes"] or org in proposal["no"]:
        raise TxFailed(f"{org!r} has already voted", Code.ALREADY_VOTED)
    side = "yes" if p.approve else "no"
    proposal = {**proposal, side: sorted([*proposal[side], org])}
    ctx.emit("proposal_vote", proposal=p.proposal, org=org, approve=p.approve)
    action = Propose.model_validate({"action": proposal["action"], "title": proposal["title"]}).action
    proposal = _tally(state, ctx, proposal, action)
    state.put(proposal_key(p.proposal), proposal)
    return {"proposal": p.proposal, "status": proposal["status"], "yes": len(proposal["yes"]),
            "no": len(proposal["no"])}


HANDLERS: list[Handler[Any]] = [
    Handler("governance.propose", 1, Propose, apply_propose, _authorize_admin,
            summary="An organisation admin proposes a consortium change; their organisation votes yes."),
    Handler("governance.vote", 1, Vote, apply_vote, _authorize_admin,
            summary="An organisation admin casts the organisation's vote on a proposal."),
]
