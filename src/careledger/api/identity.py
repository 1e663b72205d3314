"""Identity queries: organisations, their members, who a key is, and patient pseudonyms.

Everything here reads committed state (``identity/...`` keys, see
:mod:`careledger.contracts.identity`). Patients are answered with key, status and since only; the
ledger holds no demographics to leak.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from careledger.api import schemas
from careledger.api.common import HEX32_PATTERN, node_of, not_found
from careledger.api.errors import LedgerRoute
from careledger.contracts import governance, identity
from careledger.node.store import StateView

router = APIRouter(prefix="/v1/identity", tags=["identity"], route_class=LedgerRoute)

OrgPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9.-]{1,62}$", description="Organisation id")]
KeyPath = Annotated[str, Path(pattern=HEX32_PATTERN, description="Ed25519 public key, hex")]
PseudonymPath = Annotated[str, Path(pattern=r"^pt-[0-9a-f]{32}$", description="Patient pseudonym")]


def _org(view: StateView, org: str) -> identity.OrgRecord:
    rec = identity.get_org(view, org)
    if rec is None:
        raise not_found(f"organisation {org!r}")
    return rec


@router.get("/organisations", summary="List organisations", response_model=None,
            responses={200: {"model": schemas.OrganisationList, "description": "Every organisation, by id"}})
def list_organisations(request: Request) -> JSONResponse:
    """Every organisation ever admitted, active or removed, ordered by id."""
    view = node_of(request).store.view()
    return JSONResponse({"organisations": [rec.to_json() for rec in identity.organisations(view)]})


@router.get("/organisations/{org}", summary="One organisation", response_model=None,
            responses={200: {"model": schemas.Organisation, "description": "The organisation record"},
                       **schemas.errors(400, 404)})
def get_organisation(request: Request, org: OrgPath) -> JSONResponse:
    """An organisation's name, roles, admin keys, API endpoint, status and admission height."""
    return JSONResponse(_org(node_of(request).store.view(), org).to_json())


@router.get("/organisations/{org}/members", summary="An organisation's members", response_model=None,
            responses={200: {"model": schemas.MemberList, "description": "Members with roles and status"},
                       **schemas.errors(400, 404)})
def list_members(request: Request, org: OrgPath) -> JSONResponse:
    """The member keys an organisation's admins have enrolled, with their roles and status."""
    view = node_of(request).store.view()
    _org(view, org)
    members = []
    for pub, entry in identity.members_of(view, org):
        member: dict[str, Any] = {"key": pub, "roles": list(entry.roles), "status": entry.status}
        rec = identity.get_key_record(view, pub)
        if rec is not None and rec.handle is not None:
            member["handle"] = rec.handle
        members.append(member)
    return JSONResponse({"org": org, "members": members})


@router.get("/keys/{pubkey}", summary="Who a key is", response_model=None,
            responses={200: {"model": schemas.KeyInfo, "description": "The key's kind, organisation, roles, status"},
                       **schemas.errors(400, 404)})
def get_key(request: Request, pubkey: KeyPath) -> JSONResponse:
    """Whether a key is an organisation admin, a member or a patient; its organisation, roles and
    status; whether it may sign now; and its validator power if it is a validator."""
    view = node_of(request).store.view()
    rec = identity.get_key_record(view, pubkey)
    validator = governance.get_validator(view, pubkey)
    if rec is None and validator is None:
        raise not_found(f"key {pubkey}")
    info: dict[str, Any] = {"key": pubkey, "kind": "unregistered", "org": None, "roles": [], "status": "none"}
    if rec is not None:
        info.update(rec.to_json())
        info.setdefault("org", None)
    info["active"] = identity.resolve_signer(view, pubkey).active
    info["validator"] = None if validator is None else validator.to_json()
    return JSONResponse(info)


@router.get("/patients/{pseudonym}", summary="A patient pseudonym", response_model=None,
            responses={200: {"model": schemas.PatientView, "description": "Key, status and registration height"},
                       **schemas.errors(400, 404)})
def get_patient(request: Request, pseudonym: PseudonymPath) -> JSONResponse:
    """The key behind a patient pseudonym, its status and registration height. Nothing else exists."""
    rec = identity.get_patient(node_of(request).store.view(), pseudonym)
    if rec is None:
        raise not_found(f"patient {pseudonym}")
    return JSONResponse({"pseudonym": pseudonym, "key": rec.key, "status": rec.status, "since": rec.since})
