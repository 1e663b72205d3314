"""Claims contract: edit-table versions approved by the consortium.

An edit table (NCCI-style procedure pairs and units-per-date limits) is consortium rule data: its
rows may be licensed (CPT) and large, so the ledger records a version by its name, version, the
day it takes effect, its source and the SHA-256 digest of its canonical form
(:class:`careledger.claims.edits.EditTables`), and the consortium approves it by vote:

* ``claims.propose_table`` (an organisation admin; the proposer's organisation votes yes) opens the
  version; ``claims.vote_table`` casts an organisation's vote;
* as in governance, it is approved by the votes of more than 2/3 of the active organisations,
  rejected once that can no longer happen, and closed after ``params.proposal_ttl_blocks``;
* an adjudication names the approved version in force for the claim's service start (the latest
  effective by then, the last approved among equals), with its digest.

This mirrors ``governance.propose``; when the governance contract gains an action kind for it
(``approve_claims_table``), these two transactions become that action.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from careledger.contracts import governance
from careledger.contracts.base import Handler, Payload, TxContext
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import Hex32

from .handlers import Day, TableVersion
from .layout import TableRecord, get_table, put_table, table_key
from .plan_rules import TableName


class ProposeTable(Payload):
    name: TableName
    version: TableVersion
    effective_day: Day
    digest: Hex32
    source: Literal["synthetic", "cms", "payer"]


class VoteTable(Payload):
    name: TableName
    version: TableVersion
    approve: bool


def _authorize_admin(state: Overlay, ctx: TxContext, p: Any) -> None:
    if ctx.signer.kind != "admin" or ctx.signer.org is None or not ctx.signer.active:
        raise TxFailed("only an organisation admin votes on rule tables", Code.UNAUTHORISED)


def _tally(state: Overlay, ctx: TxContext, record: TableRecord) -> TableRecord:
    orgs = governance.active_orgs(state)
    yes = [o for o in record.yes if o in orgs]
    no = [o for o in record.no if o in orgs]
    if 3 * len(yes) > 2 * len(orgs):
        ctx.emit("table_approved", name=record.name, version=record.version)
        return replace(record, status="approved", closed=ctx.env.height)
    if 3 * (len(orgs) - len(no)) <= 2 * len(orgs):
        ctx.emit("table_rejected", name=record.name, version=record.version)
        return replace(record, status="rejected", closed=ctx.env.height)
    return record


def apply_propose_table(state: Overlay, ctx: TxContext, p: ProposeTable) -> Any:
    """Open a table version for a vote. Raises CLAIM_TABLE_EXISTS for a name and version already used."""
    if get_table(state, p.name, p.version) is not None:
        raise TxFailed(f"edit table {p.name} {p.version} already exists", Code.CLAIM_TABLE_EXISTS)
    org = ctx.signer.org
    assert org is not None
    record = TableRecord(p.name, p.version, p.effective_day, p.digest, p.source, "open", org, (org,), (),
                         ctx.env.height, ctx.env.height + ctx.params["proposal_ttl_blocks"], None)
    record = _tally(state, ctx, record)
    put_table(state, record)
    return {"name": p.name, "version": p.version, "status": record.status}


def apply_vote_table(state: Overlay, ctx: TxContext, p: VoteTable) -> Any:
    """Vote on a table version. Raises CLAIM_TABLE_UNKNOWN, PROPOSAL_CLOSED (decided or expired),
    ALREADY_VOTED."""
    record = get_table(state, p.name, p.version)
    if record is None:
        raise TxFailed(f"no edit table {p.name} {p.version}", Code.CLAIM_TABLE_UNKNOWN)
    if record.status != "open" or ctx.env.height > record.expires:
        raise TxFailed(f"the vote on {p.name} {p.version} is closed", Code.PROPOSAL_CLOSED)
    org = ctx.signer.org
    assert org is not None
    if org in record.yes or org in record.no:
        raise TxFailed(f"{org!r} has already voted", Code.ALREADY_VOTED)
    if p.approve:
        record = replace(record, yes=tuple(sorted((*record.yes, org))))
    else:
        record = replace(record, no=tuple(sorted((*record.no, org))))
    record = _tally(state, ctx, record)
    put_table(state, record)
    return {"name": p.name, "version": p.version, "status": record.status, "yes": len(record.yes),
            "no": len(record.no)}


HANDLERS: list[Handler[Any]] = [
    Handler("claims.propose_table", 1, ProposeTable, apply_propose_table, _authorize_admin,
            summary="An organisation admin proposes an edit-table version (name, version, effective day, digest).",
            read_hints=lambda p: [table_key(p.name, p.version)]),
    Handler("claims.vote_table", 1, VoteTable, apply_vote_table, _authorize_admin,
            summary="An organisation admin votes on an edit-table version; more than 2/3 approve it.",
            read_hints=lambda p: [table_key(p.name, p.version)]),
]
