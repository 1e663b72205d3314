"""Location master data: the GLN registry, and how EPCIS location and party identifiers resolve to members.

A GLN (Global Location Number, 13 digits) names a site: a plant, a warehouse, a pharmacy. Every
``readPoint``, ``bizLocation``, ``source`` and ``destination`` of a captured EPCIS event must resolve to
a consortium member, so the ledger knows whose event it is and where goods went:

1. a **registered location** (``supply/location/<gln>``, written by ``supply.set_location``) resolves to
   its organisation; a *retired* one resolves to nothing (``LOCATION_UNKNOWN``), even under a prefix;
2. otherwise the GLN resolves to the active member whose **GS1 Company Prefix** it falls under
   (prefixes never overlap: governance and genesis refuse overlapping ones, so at most one matches);
3. otherwise it is refused: ``LOCATION_UNKNOWN`` for a location, ``PARTY_UNKNOWN`` for a party.

``urn:careledger:org:<id>`` names a member directly (the form CareLedger used to export parties in).

Who registers a location (governed like members: an organisation's admin manages its own):

* an admin of the organisation, for a GLN under one of its own GS1 Company Prefixes;
* an admin of a regulator, for any organisation, for a GLN under that organisation's prefixes or under
  no member's prefix at all (a GLN issued individually, a pharmacy without a company prefix).

A GLN under another member's prefix is ``GLN_NOT_OWNED``; a GLN registered (and not retired) for another
organisation is ``LOCATION_EXISTS``. The same transaction updates a location (name, role, address) or
retires it (``status: "retired"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from pydantic import Field

from careledger.contracts import identity
from careledger.contracts.base import Handler, Reader, TxContext
from careledger.contracts.supply import gs1
from careledger.contracts.supply.base import SupplyPayload
from careledger.contracts.supply.layout import (
    ADDRESS_FIELDS,
    LocationRecord,
    SupplyError,
    SupplyInvalid,
    get_location,
    location_key,
    put_location,
)
from careledger.core.errors import Code
from careledger.core.state import Overlay
from careledger.core.types import OrgId

ORG_URN = "urn:careledger:org:"
Text = Annotated[str, Field(min_length=1, max_length=120)]
Role = Annotated[str, Field(pattern=r"^[a-z][a-z_]{1,39}$")]


class Address(SupplyPayload):
    """A site's postal address (business data, not PHI); every field optional, ``country`` ISO 3166 alpha-2."""

    street: Text | None = None
    city: Text | None = None
    postal_code: Annotated[str, Field(min_length=1, max_length=20)] | None = None
    region: Text | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None

    def fields(self) -> tuple[tuple[str, str], ...]:
        values = self.model_dump()
        return tuple((f, values[f]) for f in ADDRESS_FIELDS if values[f] is not None)


class SetLocation(SupplyPayload):
    gln: str
    org: OrgId | None = None
    name: Text
    role: Role
    address: Address | None = None
    status: Literal["active", "retired"] = "active"

    def normalise(self) -> SetLocation:
        try:
            gln = gs1.parse_gln(self.gln)
        except gs1.GS1Error as exc:
            raise SupplyInvalid(exc.message, exc.code) from None
        return self.model_copy(update={"gln": gln})


def prefix_holder(state: Reader, digits: str) -> str | None:
    """The active organisation holding the GS1 Company Prefix that ``digits`` (a GLN, GTIN body or SSCC
    body) starts with, if any (prefixes do not overlap, so at most one does)."""
    for rec in identity.organisations(state):
        if rec.is_active and any(digits.startswith(p) for p in rec.gs1_company_prefixes):
            return rec.id
    return None


@dataclass
class Resolver:
    """Resolves GLNs and EPCIS location and party identifiers to organisations, memoised for one transaction."""

    state: Reader
    glns: dict[str, str | None] = field(default_factory=dict)

    def gln(self, gln: str) -> str | None:
        """The organisation a GLN resolves to (a registered location first, then the prefix holder), or None."""
        if gln not in self.glns:
            rec = get_location(self.state, gln)
            if rec is not None:
                self.glns[gln] = rec.org if rec.is_active and identity.is_org_active(self.state, rec.org) else None
            else:
                self.glns[gln] = prefix_holder(self.state, gln)
        return self.glns[gln]

    def identifier(self, uri: str, where: str, party: bool = False) -> str:
        """The organisation an EPCIS ``readPoint``/``bizLocation`` id (or, with ``party``, a source or
        destination party) names. Raises SupplyError: LOCATION_UNKNOWN or PARTY_UNKNOWN when nothing
        resolves, MALFORMED_URN (and the other GS1 codes) for a malformed identifier."""
        code = Code.PARTY_UNKNOWN if party else Code.LOCATION_UNKNOWN
        if uri.startswith(ORG_URN):
            org = uri[len(ORG_URN):]
            if identity.is_org_active(self.state, org):
                return org
            raise SupplyError(f"{where}: {uri[:80]!r} names no active member", code)
        try:
            gln = gs1.gln_of(uri)
        except gs1.GS1Error as exc:
            raise SupplyError(f"{where}: {exc.message}", exc.code) from None
        if gln is None:
            raise SupplyError(f"{where}: {uri[:80]!r} is not a GLN (SGLN or PGLN URN, or a /414/ or /417/ Digital "
                              "Link)", code)
        holder = self.gln(gln)
        if holder is None:
            raise SupplyError(f"{where}: GLN {gln} ({uri[:80]}) is neither a registered location nor under a "
                              "member's GS1 Company Prefix", code)
        return holder


class SetLocationResult(TypedDict):
    gln: str
    org: str
    status: str


def apply_set_location(state: Overlay, ctx: TxContext, p: SetLocation) -> SetLocationResult:
    """Register, update or retire a location. Raises UNAUTHORISED (not an admin of the organisation nor of a
    regulator), ORG_UNKNOWN / ORG_INACTIVE, GLN_NOT_OWNED (under another member's prefix, or, for the
    organisation's own admin, under none of its prefixes) and LOCATION_EXISTS (registered for another
    organisation)."""
    signer = ctx.signer
    if signer.kind != "admin" or signer.org is None:
        raise SupplyError("only an organisation admin registers locations", Code.UNAUTHORISED)
    org = p.org or signer.org
    regulator = "regulator" in identity.require_org(state, signer.org).roles
    if org != signer.org and not regulator:
        raise SupplyError(f"an admin of {signer.org!r} may not register locations for {org!r}", Code.UNAUTHORISED)
    identity.require_org(state, org)
    holder = prefix_holder(state, p.gln)
    if holder is not None and holder != org:
        raise SupplyError(f"GLN {p.gln} is under a GS1 Company Prefix of {holder!r}", Code.GLN_NOT_OWNED)
    if holder is None and not regulator:
        raise SupplyError(f"GLN {p.gln} is not under a GS1 Company Prefix of {org!r}; a regulator registers it",
                          Code.GLN_NOT_OWNED)
    current = get_location(state, p.gln)
    if current is not None and current.org != org and current.is_active:
        raise SupplyError(f"GLN {p.gln} is registered for {current.org!r}", Code.LOCATION_EXISTS)
    since = ctx.env.height if current is None or current.org != org else current.since
    put_location(state, LocationRecord(gln=p.gln, org=org, name=p.name, role=p.role,
                                       address=() if p.address is None else p.address.fields(), status=p.status,
                                       since=since, updated=ctx.env.height))
    ctx.emit("location_set", gln=p.gln, org=org, status=p.status)
    return {"gln": p.gln, "org": org, "status": p.status}


def _authorize(state: Overlay, ctx: TxContext, p: SetLocation) -> None:
    if ctx.signer.kind != "admin" or ctx.signer.org is None:
        raise SupplyError("only an organisation admin registers locations", Code.UNAUTHORISED)


HANDLERS: list[Handler[Any]] = [
    Handler("supply.set_location", 1, SetLocation, apply_set_location, _authorize,
            summary="An organisation admin (or a regulator) registers, updates or retires a location (GLN).",
            read_hints=lambda p: [location_key(p.gln)]),
]
