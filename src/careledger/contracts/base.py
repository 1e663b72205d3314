"""What a contract is: handlers registered by (type, version), each with three steps.

* ``payload``: a strict pydantic model: the stateless shape check (unknown fields, wrong types and
  out-of-range values are INVALID_PAYLOAD);
* ``authorize(state, ctx, payload)``: may the signer do this? Read-only; raises :class:`TxFailed`
  (UNAUTHORISED and friends). The node also runs it at admission against committed state, so most
  refusals reach the client before anything is written;
* ``apply(state, ctx, payload)``: state checks and writes; raises :class:`TxFailed` to refuse, in
  which case every write of the transaction is rolled back. Returns the receipt's ``result``.

Handlers are plain functions; contracts are modules; the :class:`Registry` is built at the edge and
passed in (no global registry).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from careledger.core.block import BlockEnv
from careledger.core.errors import Code, EncodingError, InvalidTx
from careledger.core.state import Overlay

P = TypeVar("P", bound=BaseModel)


class Payload(BaseModel):
    """Base of every transaction payload: strict types, no unknown fields, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed: a consortium member, an organisation admin or a registered patient."""

    key: str
    kind: str  # "admin" | "member" | "patient" | "unregistered"
    org: str | None
    roles: tuple[str, ...]
    active: bool

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)


@dataclass(slots=True)
class TxContext:
    """Everything apply may know about the transaction and its block, plus an event sink."""

    env: BlockEnv
    tx_hash: str
    index: int
    signer: Signer
    params: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, event_type: str, **attrs: Any) -> None:
        self.events.append({"attrs": attrs, "type": event_type})

    def derive_id(self, prefix: str, n: int = 0) -> str:
        """A deterministic identifier for the n-th object this transaction creates."""
        return f"{prefix}-{self.tx_hash[:24]}" if n == 0 else f"{prefix}-{self.tx_hash[:24]}-{n}"


Authorize = Callable[[Overlay, TxContext, Any], None]
Apply = Callable[[Overlay, TxContext, Any], Any]


def _allow_all(state: Overlay, ctx: TxContext, payload: Any) -> None:
    return None


@dataclass(frozen=True)
class Handler(Generic[P]):
    type: str
    version: int
    payload: builtins.type[P]
    apply: Apply
    authorize: Authorize = _allow_all
    open_to_unregistered: bool = False
    summary: str = ""
    read_hints: Callable[[Any], list[str]] | None = None  # keys apply will read; only a prefetch hint

    def parse(self, payload: dict[str, Any]) -> P:
        try:
            return self.payload.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
            raise EncodingError(f"{self.type} v{self.version}: {where}: {first.get('msg', 'invalid')}",
                                Code.INVALID_PAYLOAD) from None


class Registry:
    """Handlers by (type, version)."""

    def __init__(self, handlers: Iterable[Handler[Any]] = ()) -> None:
        self._handlers: dict[tuple[str, int], Handler[Any]] = {}
        for h in handlers:
            self.add(h)

    def add(self, handler: Handler[Any]) -> None:
        key = (handler.type, handler.version)
        if key in self._handlers:
            raise ValueError(f"handler {key} registered twice")
        self._handlers[key] = handler

    def get(self, tx_type: str, version: int) -> Handler[Any]:
        try:
            return self._handlers[(tx_type, version)]
        except KeyError:
            raise InvalidTx(f"unknown transaction type {tx_type!r} version {version}",
                            Code.UNKNOWN_TX_TYPE) from None

    def kinds(self) -> list[tuple[str, int]]:
        return sorted(self._handlers)

    def handlers(self) -> list[Handler[Any]]:
        return [self._handlers[k] for k in self.kinds()]
