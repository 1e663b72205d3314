"""Rules versions: rule changes take effect at a height the consortium agreed through governance.

A release that changes what a transaction does (a new parser, new rule tables, a new transaction
version) must not switch when each node happens to be upgraded: the nodes would disagree from that
block on. Instead each behaviour belongs to a *rules version*, and the version in force at a height
is ledger state, set by a governance proposal (``schedule_rules``) that names the version and the
height it takes effect at. Every node switches at the same block, and a replay from genesis switches
at the same place. Contracts read the version in force from ``ctx.params["rules_version"]`` (filled in
by the executor from this schedule for the block being executed), never from the clock or the
software version.

State::

    governance/rules   RulesSchedule  {"activations": [{"height": int, "version": int}, ...]}

Activations are ordered by height and by version, both strictly increasing. Without any, version
:data:`GENESIS_RULES_VERSION` is in force from genesis. A ``schedule_rules`` action is valid (when
proposed and again when the vote that passes it executes) only for a version above every scheduled
one and a height above the current block and every scheduled height: an activation can never be
moved into the past. The executor refuses to execute a block at a height whose rules version this
release does not implement (``UPGRADE_REQUIRED``): an un-upgraded node stops there rather than
diverge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from careledger.contracts.base import TxContext
from careledger.contracts.governance.actions import GENESIS_RULES_VERSION, ScheduleRules
from careledger.contracts.governance.layout import RULES_KEY
from careledger.core import codec
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay, StateReader


@dataclass(frozen=True, slots=True)
class Activation:
    """Rules ``version`` is in force from block ``height`` on."""

    version: int
    height: int

    def to_json(self) -> dict[str, Any]:
        return {"height": self.height, "version": self.version}


@dataclass(frozen=True, slots=True)
class RulesSchedule:
    """Every agreed activation, in height order."""

    activations: tuple[Activation, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"activations": [a.to_json() for a in self.activations]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RulesSchedule:
        return cls(tuple(Activation(int(a["version"]), int(a["height"])) for a in doc["activations"]))

    def version_at(self, height: int) -> int:
        """The rules version in force for the block at ``height``."""
        version = GENESIS_RULES_VERSION
        for activation in self.activations:
            if activation.height > height:
                break
            version = activation.version
        return version

    @property
    def latest(self) -> Activation:
        """The last scheduled activation (genesis' version at height 0 when there is none)."""
        return self.activations[-1] if self.activations else Activation(GENESIS_RULES_VERSION, 0)


def get_schedule(state: StateReader | Overlay) -> RulesSchedule:
    raw = state.get_raw(RULES_KEY)
    return RulesSchedule() if raw is None else RulesSchedule.from_json(codec.decode_trusted(raw))


def put_schedule(state: Overlay, schedule: RulesSchedule) -> None:
    state.put(RULES_KEY, schedule.to_json())


def rules_version_at(state: StateReader | Overlay, height: int) -> int:
    """The rules version in force for the block at ``height`` (what ``ctx.params["rules_version"]`` holds)."""
    return get_schedule(state).version_at(height)



def validate_schedule(state: Overlay, ctx: TxContext, action: ScheduleRules) -> None:
    """Checks a ``schedule_rules`` action passes when proposed and again when executed.

    Raises PROPOSAL_INVALID when the version is not above every scheduled version, or the height is not
    above the current block's and every scheduled height (an activation is never in the past).
    """
    latest = get_schedule(state).latest
    if action.version <= latest.version:
        raise TxFailed(f"rules version {action.version} is not above the last scheduled version {latest.version}",
                       Code.PROPOSAL_INVALID)
    if action.height <= ctx.env.height:
        raise TxFailed(f"activation height {action.height} is not after the current block {ctx.env.height}",
                       Code.PROPOSAL_INVALID)
    if action.height <= latest.height:
        raise TxFailed(f"activation height {action.height} is not after the last scheduled activation "
                       f"({latest.height})", Code.PROPOSAL_INVALID)


def execute_schedule(state: Overlay, ctx: TxContext, action: ScheduleRules) -> None:
    """Record the activation (the proposal passed) and emit ``rules_scheduled``."""
    schedule = get_schedule(state)
    put_schedule(state, RulesSchedule((*schedule.activations, Activation(action.version, action.height))))
    ctx.emit("rules_scheduled", height=action.height, version=action.version)
