"""The consortium changes a governance proposal can carry (typed payload parts, stored as proposed).

Actions: ``add_organisation`` (declared exactly as in the genesis file), ``remove_organisation``,
``set_org_roles``, ``set_gs1_prefixes`` (an organisation's GS1 Company Prefixes, which decide the GTINs
it may register and the GLNs it answers for), ``set_validator`` (power 0 removes a validator) and
``schedule_rules`` (a rules version and the height it takes effect at:
:mod:`careledger.contracts.governance.rules`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, TypeAdapter

from careledger.contracts.base import Payload
from careledger.core.genesis import OrganisationDecl
from careledger.core.types import OrgId, OrgRole, PublicKeyHex

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


GS1Prefix = Annotated[str, Field(pattern=r"^[0-9]{6,12}$")]


class SetGs1Prefixes(Payload):
    """Governance action: ``org``'s GS1 Company Prefixes become ``prefixes`` (in this order; none may overlap
    another organisation's)."""

    kind: Literal["set_gs1_prefixes"]
    org: OrgId
    prefixes: Annotated[list[GS1Prefix], Field(max_length=32)]


class SetValidator(Payload):
    kind: Literal["set_validator"]
    org: OrgId
    pub_key: PublicKeyHex
    power: Annotated[int, Field(ge=0, le=1_000_000)]


GENESIS_RULES_VERSION = 1
"""The rules version in force from genesis until governance schedules another."""


class ScheduleRules(Payload):
    """Governance action: rules ``version`` takes effect at block ``height``."""

    kind: Literal["schedule_rules"]
    version: Annotated[int, Field(ge=GENESIS_RULES_VERSION + 1, le=1_000_000)]
    height: Annotated[int, Field(ge=1, le=2**53 - 1)]


AnyAction: TypeAlias = (AddOrganisation | RemoveOrganisation | SetOrgRoles | SetGs1Prefixes | SetValidator
                         | ScheduleRules)
Action = Annotated[AnyAction, Field(discriminator="kind")]

_ACTION: TypeAdapter[AnyAction] = TypeAdapter(Action)


def action_to_json(action: AnyAction) -> dict[str, Any]:
    """The action's one JSON form (as proposed, with defaults filled in)."""
    return action.model_dump(mode="json")


def action_from_json(doc: dict[str, Any]) -> AnyAction:
    """The typed action of a stored proposal."""
    return _ACTION.validate_python(doc)
