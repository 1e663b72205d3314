"""Governance contract: consortium changes pass with the votes of more than 2/3 of organisations.

:mod:`.actions` holds the changes a proposal can carry (``add_organisation``, ``remove_organisation``,
``set_org_roles``, ``set_gs1_prefixes``, ``set_validator``, ``schedule_rules``), :mod:`.layout` the state
keys, typed records and accessors, :mod:`.handlers` the transactions, :mod:`.rules` the rules versions
governance schedules (each in force from an agreed height, so every node switches at the same block).
Other layers use the names re-exported here.
"""

from __future__ import annotations

from careledger.contracts.governance.actions import (
    GENESIS_RULES_VERSION,
    Action,
    AddOrganisation,
    AnyAction,
    NewOrganisation,
    RemoveOrganisation,
    ScheduleRules,
    SetGs1Prefixes,
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
from careledger.contracts.governance.rules import RulesSchedule, get_schedule, rules_version_at
from careledger.contracts.identity import active_org_ids as active_orgs

__all__ = [
    "GENESIS_RULES_VERSION",
    "HANDLERS",
    "Action",
    "AddOrganisation",
    "AnyAction",
    "NewOrganisation",
    "ProposalRecord",
    "Propose",
    "RemoveOrganisation",
    "RulesSchedule",
    "ScheduleRules",
    "SetGs1Prefixes",
    "SetOrgRoles",
    "SetValidator",
    "ValidatorRecord",
    "Vote",
    "active_orgs",
    "get_proposal",
    "get_schedule",
    "get_validator",
    "proposal_key",
    "proposals",
    "put_validator",
    "rules_version_at",
    "validator_key",
    "validator_set_json",
    "validators",
]
