"""Product master data and batch (lot) status: register a product, withdraw it, recall a lot.

Rules:
* only a manufacturer holding the GS1 Company Prefix a GTIN falls under may register that GTIN
  (``GTIN_NOT_OWNED`` otherwise); the prefix is kept with the product so that EPC URNs can be
  written for its packs (a GTIN alone does not say where the company prefix ends);
* the product's owner withdraws it; the owner or a regulator recalls a lot. Both are single writes:
  every pack of the product or lot becomes non-dispensable at once, whatever their number.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, TypedDict

from pydantic import Field

from careledger.contracts.base import Handler, TxContext
from careledger.contracts.supply.base import (
    SupplyPayload,
    company_prefix_of,
    org_roles,
    require_org_role,
    require_supply_member,
)
from careledger.contracts.supply.layout import (
    ProductRecord,
    SupplyError,
    check_serial,
    get_lot,
    get_product,
    lot_key,
    parse_gtin,
    product_key,
    put_lot,
    put_product,
)
from careledger.core.errors import Code
from careledger.core.state import Overlay
from careledger.core.types import Reason

Text = Annotated[str, Field(min_length=1, max_length=120)]
NationalCodes = Annotated[dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{1,31}$")],
                               Annotated[str, Field(min_length=1, max_length=40)]], Field(max_length=8)]


class RegisterProduct(SupplyPayload):
    gtin: str
    name: Text
    strength: Text | None = None
    dosage_form: Text | None = None
    ndc: Annotated[str, Field(pattern=r"^[0-9]{4,5}-[0-9]{3,4}-[0-9]{1,2}$")] | None = None
    national_codes: NationalCodes = {}

    def normalise(self) -> RegisterProduct:
        return self.model_copy(update={"gtin": parse_gtin(self.gtin)})


class WithdrawProduct(SupplyPayload):
    gtin: str
    reason: Reason

    def normalise(self) -> WithdrawProduct:
        return self.model_copy(update={"gtin": parse_gtin(self.gtin)})


class RecallLot(SupplyPayload):
    gtin: str
    lot: str
    reason: Reason

    def normalise(self) -> RecallLot:
        check_serial(self.lot, "lot")
        return self.model_copy(update={"gtin": parse_gtin(self.gtin)})


def require_product(state: Overlay, gtin: str) -> ProductRecord:
    """The registered product; raises PRODUCT_UNKNOWN."""
    product = get_product(state, gtin)
    if product is None:
        raise SupplyError(f"GTIN {gtin} is not a registered product", Code.PRODUCT_UNKNOWN)
    return product


def require_owned_product(state: Overlay, org: str, gtin: str) -> ProductRecord:
    """The product, which ``org`` must own; an unregistered GTIN under another company's prefix is
    refused as GTIN_NOT_OWNED rather than PRODUCT_UNKNOWN."""
    product = get_product(state, gtin)
    if product is None:
        if company_prefix_of(state, org, gtin) is None:
            raise SupplyError(f"GTIN {gtin} is not under a GS1 Company Prefix of {org!r}", Code.GTIN_NOT_OWNED)
        raise SupplyError(f"GTIN {gtin} is not a registered product", Code.PRODUCT_UNKNOWN)
    if product.owner != org:
        raise SupplyError(f"GTIN {gtin} belongs to {product.owner!r}, not {org!r}", Code.GTIN_NOT_OWNED)
    return product


def _authorize_member(state: Overlay, ctx: TxContext, p: object) -> None:
    require_supply_member(state, ctx)


class RegisterProductResult(TypedDict):
    gtin: str
    company_prefix: str


def apply_register_product(state: Overlay, ctx: TxContext, p: RegisterProduct) -> RegisterProductResult:
    """Register a GTIN under one of the signer's GS1 Company Prefixes. Raises UNAUTHORISED (not a
    manufacturer), GTIN_NOT_OWNED or PRODUCT_EXISTS."""
    org = require_supply_member(state, ctx)
    require_org_role(state, org, "manufacturer")
    prefix = company_prefix_of(state, org, p.gtin)
    if prefix is None:
        raise SupplyError(f"GTIN {p.gtin} is not under a GS1 Company Prefix of {org!r}", Code.GTIN_NOT_OWNED)
    if state.has(product_key(p.gtin)):
        raise SupplyError(f"GTIN {p.gtin} is already registered", Code.PRODUCT_EXISTS)
    put_product(state, ProductRecord(
        gtin=p.gtin, name=p.name, strength=p.strength, dosage_form=p.dosage_form, ndc=p.ndc,
        national_codes=tuple(sorted(p.national_codes.items())), owner=org, company_prefix=prefix, status="active",
        since=ctx.env.height))
    ctx.emit("product_registered", gtin=p.gtin, owner=org)
    return {"gtin": p.gtin, "company_prefix": prefix}


class WithdrawResult(TypedDict):
    gtin: str
    status: str


def apply_withdraw_product(state: Overlay, ctx: TxContext, p: WithdrawProduct) -> WithdrawResult:
    """Withdraw a product from the market (one write). Raises PRODUCT_UNKNOWN, UNAUTHORISED (neither the
    owner nor a regulator) or PRODUCT_WITHDRAWN."""
    org = require_supply_member(state, ctx)
    product = require_product(state, p.gtin)
    if product.owner != org and "regulator" not in org_roles(state, org):
        raise SupplyError("only the product's owner or a regulator may withdraw it", Code.UNAUTHORISED)
    if product.is_withdrawn:
        raise SupplyError(f"GTIN {p.gtin} is already withdrawn", Code.PRODUCT_WITHDRAWN)
    put_product(state, replace(product, status="withdrawn", withdrawn_at=ctx.env.time_ms, withdrawn_by=org,
                               reason=p.reason))
    ctx.emit("product_withdrawn", gtin=p.gtin, by=org)
    return {"gtin": p.gtin, "status": "withdrawn"}


class RecallResult(TypedDict):
    gtin: str
    lot: str
    packs: int
    status: str


def apply_recall_lot(state: Overlay, ctx: TxContext, p: RecallLot) -> RecallResult:
    """Recall a lot (one write, whatever its size). Raises PRODUCT_UNKNOWN, UNAUTHORISED (neither the
    owner nor a regulator), LOT_UNKNOWN or LOT_RECALLED."""
    org = require_supply_member(state, ctx)
    product = require_product(state, p.gtin)
    if product.owner != org and "regulator" not in org_roles(state, org):
        raise SupplyError("only the product's owner or a regulator may recall a lot", Code.UNAUTHORISED)
    lot = get_lot(state, p.gtin, p.lot)
    if lot is None:
        raise SupplyError(f"lot {p.lot!r} of GTIN {p.gtin} is unknown", Code.LOT_UNKNOWN)
    if lot.is_recalled:
        raise SupplyError(f"lot {p.lot!r} is already recalled", Code.LOT_RECALLED)
    put_lot(state, replace(lot, status="recalled", recalled_at=ctx.env.time_ms, recalled_by=org, reason=p.reason))
    ctx.emit("lot_recalled", gtin=p.gtin, lot=p.lot, by=org, packs=lot.packs)
    return {"gtin": p.gtin, "lot": p.lot, "packs": lot.packs, "status": "recalled"}


HANDLERS: list[Handler[Any]] = [
    Handler("supply.register_product", 1, RegisterProduct, apply_register_product, _authorize_member,
            summary="A manufacturer registers a GTIN under one of its GS1 Company Prefixes.",
            read_hints=lambda p: [product_key(p.gtin)]),
    Handler("supply.withdraw_product", 1, WithdrawProduct, apply_withdraw_product, _authorize_member,
            summary="The product's owner (or a regulator) withdraws it from the market.",
            read_hints=lambda p: [product_key(p.gtin)]),
    Handler("supply.recall_lot", 1, RecallLot, apply_recall_lot, _authorize_member,
            summary="The product's owner or a regulator recalls a batch: one write, whatever its size.",
            read_hints=lambda p: [product_key(p.gtin), lot_key(p.gtin, p.lot)]),
]
