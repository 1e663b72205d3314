"""The governance contract's state layout: keys, typed records and accessors (pure; no I/O).

State keys (values are canonical JSON; every key is built by one function below)::

    governance/proposal/<id>       ProposalRecord   {id, title, action, proposer_org, opened, expires, status,
                                                     yes: [org], no: [org], closed?, failure_code?}
    governance/validator/<pubkey>  ValidatorRecord  {org, power}

A proposal's ``action`` is stored as proposed (see :mod:`careledger.contracts.governance.actions`);
``yes`` starts with the proposing organisation and every later vote keeps each list sorted.
``status`` is ``open``, ``executed``, ``rejected`` or ``failed`` (with ``failure_code``); ``closed``
is the height that closed it. Optional fields marked ``?`` are absent, not null, when unset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from careledger.contracts.base import Reader, get_record, scan_records
from careledger.contracts.governance.actions import AnyAction, action_from_json, action_to_json
from careledger.core.state import Overlay

PROPOSAL_PREFIX = "governance/proposal/"
VALIDATOR_PREFIX = "governance/validator/"


def proposal_key(pid: str) -> str:
    return f"{PROPOSAL_PREFIX}{pid}"


RULES_KEY = "governance/rules"
"""The rules versions governance scheduled (:mod:`careledger.contracts.governance.rules`)."""


def rules_key() -> str:
    return RULES_KEY


def validator_key(pub: str) -> str:
    return f"{VALIDATOR_PREFIX}{pub}"


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A consortium change proposed by an organisation, with the organisations' votes."""

    id: str
    title: str
    action: AnyAction
    proposer_org: str
    opened: int
    expires: int
    status: str  # "open" | "executed" | "rejected" | "failed"
    yes: tuple[str, ...]
    no: tuple[str, ...]
    closed: int | None = None
    failure_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"action": action_to_json(self.action), "expires": self.expires, "id": self.id,
                               "no": list(self.no), "opened": self.opened, "proposer_org": self.proposer_org,
                               "status": self.status, "title": self.title, "yes": list(self.yes)}
        if self.closed is not None:
            doc["closed"] = self.closed
        if self.failure_code is not None:
            doc["failure_code"] = self.failure_code
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ProposalRecord:
        return cls(doc["id"], doc["title"], action_from_json(doc["action"]), doc["proposer_org"], doc["opened"],
                   doc["expires"], doc["status"], tuple(doc["yes"]), tuple(doc["no"]), doc.get("closed"),
                   doc.get("failure_code"))


@dataclass(frozen=True, slots=True)
class ValidatorRecord:
    """A validator's organisation and voting power (its public key is in the state key)."""

    org: str
    power: int

    def to_json(self) -> dict[str, Any]:
        return {"org": self.org, "power": self.power}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ValidatorRecord:
        return cls(doc["org"], doc["power"])


def get_proposal(state: Reader, pid: str) -> ProposalRecord | None:
    return get_record(state, proposal_key(pid), ProposalRecord.from_json)


def put_proposal(state: Overlay, record: ProposalRecord) -> None:
    state.put(proposal_key(record.id), record.to_json())


def proposals(state: Reader) -> list[ProposalRecord]:
    """Every proposal, ordered by id."""
    return [rec for _, rec in scan_records(state, PROPOSAL_PREFIX, ProposalRecord.from_json)]


def get_validator(state: Reader, pub: str) -> ValidatorRecord | None:
    return get_record(state, validator_key(pub), ValidatorRecord.from_json)


def put_validator(state: Overlay, pub: str, record: ValidatorRecord) -> None:
    state.put(validator_key(pub), record.to_json())


def delete_validator(state: Overlay, pub: str) -> None:
    state.delete(validator_key(pub))


def validators(state: Reader) -> list[tuple[str, ValidatorRecord]]:
    """``(public key, record)`` of every validator, ordered by key."""
    return [(key[len(VALIDATOR_PREFIX):], rec) for key, rec in scan_records(state, VALIDATOR_PREFIX,
                                                                             ValidatorRecord.from_json)]


def validator_set_json(state: Reader) -> list[dict[str, Any]]:
    """The validators as ``{pub_key, org, power}``, ordered by key (the query API's form)."""
    return [{"pub_key": pub, **rec.to_json()} for pub, rec in validators(state)]
