"""What a contract is: handlers registered by (type, version), each with three steps.

* ``payload``: a strict pydantic model: the stateless shape check (unknown fields, wrong types and
  out-of-range values are INVALID_PAYLOAD). A payload model may also define ``normalise()``: a
  further stateless step (GS1 check digits, URNs, EPCIS documents) that raises :class:`InvalidTx`
  with its own code and returns the typed value the next two steps receive;
* ``authorize(state, ctx, payload)``: may the signer do this? Read-only; raises :class:`TxFailed`
  (UNAUTHORISED and friends). The node also runs it at admission against committed state, so most
  refusals reach the client before anything is written;
* ``apply(state, ctx, payload)``: state checks and writes; raises :class:`TxFailed` to refuse, in
  which case every write of the transaction is rolled back. Returns the receipt's ``result`` (a
  JSON object; contracts declare its shape as a ``TypedDict``).

A :class:`Handler` is generic over what ``authorize`` and ``apply`` receive (``Handler[P]``): the
payload model itself, or what its ``normalise()`` returns, so the payload keeps its type from
decoding to applying. Handlers are plain functions; contracts are packages; the :class:`Registry`
is built at the edge and passed in (no global registry).

State records are frozen dataclasses, each with one explicit JSON form (``to_json``/``from_json``)
defined in its contract's ``layout`` module beside the functions that build its keys;
:func:`get_record` reads one.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, overload

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from careledger.core.block import BlockEnv
from careledger.core.errors import Code, EncodingError, InvalidTx
from careledger.core.state import Overlay, StateReader

P = TypeVar("P")
"""What a handler's ``authorize`` and ``apply`` receive."""
M = TypeVar("M", bound=BaseModel)
N = TypeVar("N")
N_co = TypeVar("N_co", covariant=True)
R = TypeVar("R")

Reader: TypeAlias = StateReader | Overlay
"""Any state a contract reads: committed state, or a transaction's staged overlay."""


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


Authorize: TypeAlias = Callable[[Overlay, TxContext, P], None]
Apply: TypeAlias = Callable[[Overlay, TxContext, P], object]
ReadHints: TypeAlias = Callable[[P], list[str]]


class Normalising(Protocol[N_co]):
    """A payload model with a further stateless step: ``normalise()`` raises :class:`InvalidTx` with a
    stable code or returns what ``authorize`` and ``apply`` receive."""

    def normalise(self) -> N_co: ...


def _allow_all(state: Overlay, ctx: TxContext, payload: object) -> None:
    return None


@dataclass(frozen=True, init=False)
class Handler(Generic[P]):
    """One transaction type at one version: its payload model, its authorisation and its effect.

    ``Handler("t", 1, Model, apply, authorize)`` is a ``Handler[Model]``; when ``Model`` defines
    ``normalise() -> X`` (see :class:`Normalising`) and ``apply`` takes an ``X``, it is a
    ``Handler[X]``. Either way mypy checks that ``authorize``, ``apply`` and ``read_hints`` take
    what :meth:`parse` returns.
    """

    type: str
    version: int
    payload: builtins.type[BaseModel]
    apply: Apply[P]
    authorize: Authorize[P]
    open_to_unregistered: bool
    summary: str
    read_hints: ReadHints[P] | None  # keys apply will read; only a prefetch hint
    normalises: bool

    @overload
    def __init__(self: Handler[M], type: str, version: int, payload: builtins.type[M], apply: Apply[M],
                 authorize: Authorize[M] = ..., open_to_unregistered: bool = ..., summary: str = ...,
                 read_hints: ReadHints[M] | None = ...) -> None: ...

    @overload
    def __init__(self: Handler[N], type: str, version: int, payload: builtins.type[Normalising[N]],
                 apply: Apply[N], authorize: Authorize[N] = ..., open_to_unregistered: bool = ...,
                 summary: str = ..., read_hints: ReadHints[N] | None = ...) -> None: ...

    def __init__(self, type: str, version: int, payload: Any, apply: Any, authorize: Any = _allow_all,
                 open_to_unregistered: bool = False, summary: str = "", read_hints: Any = None) -> None:
        if not (isinstance(payload, builtins.type) and issubclass(payload, BaseModel)):
            raise TypeError(f"{type} v{version}: the payload must be a pydantic model class")
        for name, value in (("type", type), ("version", version), ("payload", payload), ("apply", apply),
                            ("authorize", authorize), ("open_to_unregistered", open_to_unregistered),
                            ("summary", summary), ("read_hints", read_hints),
                            ("normalises", callable(getattr(payload, "normalise", None)))):
            object.__setattr__(self, name, value)

    def parse(self, payload: dict[str, Any]) -> P:
        """The typed payload: the model's shape check, then its ``normalise()`` step if it has one.

        Raises EncodingError (INVALID_PAYLOAD) for a bad shape, and whatever :class:`InvalidTx` the
        normalising step raises.
        """
        try:
            model = self.payload.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
            raise EncodingError(f"{self.type} v{self.version}: {where}: {first.get('msg', 'invalid')}",
                                Code.INVALID_PAYLOAD) from None
        parsed: P = model.normalise() if self.normalises else model  # type: ignore[attr-defined,assignment]
        return parsed


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


# --- state records ------------------------------------------------------------------------------

def get_record(state: Reader, key: str, decode: Callable[[Any], R]) -> R | None:
    """The record stored at ``key`` decoded by ``decode`` (a record class's ``from_json``), or None."""
    raw = state.get_raw(key)
    return None if raw is None else decode(orjson.loads(raw))


def scan_records(state: Reader, prefix: str, decode: Callable[[Any], R]) -> Iterator[tuple[str, R]]:
    """``(key, record)`` of every entry under ``prefix``, in key order."""
    for key, raw in state.scan_raw(prefix):
        yield key, decode(orjson.loads(raw))
