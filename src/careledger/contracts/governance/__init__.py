"""Governance contract: consortium changes pass with the votes of more than 2/3 of organisations.

:mod:`.actions` holds the changes a proposal can carry, :mod:`.layout` the state keys, typed records
and accessors, :mod:`.handlers` the transactions. Other layers use the names re-exported here.
"""

from __future__ import annotations

from careledger.contracts.governance.actions import (
    Action,
    AddOrganisation,
    AnyAction,
    NewOrganisation,
    RemoveOrganisation,
    SetOrgRoles,
    SetValidator,
)
from careledger.contracts.governance.handlers import HANDLERS, Propose, Vote
from careledger.contracts.governance.layout import (
    ProposalRecord,
    ValidatorRecord,
    get_proposal,
    get_validator,
    proposal_key,
    proposals,
    put_validator,
    validator_key,
    validator_set_json,
    validators,
)
from careledger.contracts.identity import active_org_ids as active_orgs

__all__ = [
    "HANDLERS",
    "Action",
    "AddOrganisation",
    "AnyAction",
    "NewOrganisation",
    "ProposalRecord",
    "Propose",
    "RemoveOrganisation",
    "SetOrgRoles",
    "SetValidator",
    "ValidatorRecord",
    "Vote",
    "active_orgs",
    "get_proposal",
    "get_validator",
    "proposal_key",
    "proposals",
    "put_validator",
    "validator_key",
    "validator_set_json",
    "validators",
]
