"""The consortium changes a governance proposal can carry (typed payload parts, stored as proposed).

Actions: ``add_organisation`` (declared exactly as in the genesis file), ``remove_organisation``,
``set_org_roles`` and ``set_validator`` (power 0 removes a validator).
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


class SetValidator(Payload):
    kind: Literal["set_validator"]
    org: OrgId
    pub_key: PublicKeyHex
    power: Annotated[int, Field(ge=0, le=1_000_000)]


AnyAction: TypeAlias = AddOrganisation | RemoveOrganisation | SetOrgRoles | SetValidator
Action = Annotated[AnyAction, Field(discriminator="kind")]

_ACTION: TypeAdapter[AnyAction] = TypeAdapter(Action)


def action_to_json(action: AnyAction) -> dict[str, Any]:
    """The action's one JSON form (as proposed, with defaults filled in)."""
    return action.model_dump(mode="json")


def action_from_json(doc: dict[str, Any]) -> AnyAction:
    """The typed action of a stored proposal."""
    return _ACTION.validate_python(doc)
