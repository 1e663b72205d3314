"""Who is asking the FHIR facade: signed requests, short-lived bearer tokens, and SMART-style scopes.

A stock FHIR client sends only static headers, so besides the signed requests of the rest of the
API (``Authorization: CareLedger-Request …``, protocol.md section 4.3) the facade accepts
``Authorization: Bearer <token>``. A member, an organisation admin or a registered patient (a
delegate signs as the patient key it is) obtains the token, SMART Backend Services style, by
sending one signed request to the token endpoint, whose body is a ``token`` request::

    POST /fhir/auth/token
    Authorization: CareLedger-Request key=<hex32>, time=<ms>, nonce=<hex>, sig=<hex64>
    {"kind": "token", "scope"?: "system/*.read", "purpose"?: "TREAT", "emergency"?: false,
     "study"?: str, "expires_in"?: 1..300}

The request is checked like every signed request (signature, freshness, shape, never twice) and
the requester must be registered and active. The token is ``clt1.<claims>.<mac>``: the canonical claims
(``sub`` the key, ``exp_ms``, ``jti``, the purpose of use, emergency, study and scope) in base64url,
and an HMAC-SHA-256 under a secret the issuing node draws at start-up, so a token is valid only at
that node, until it expires (at most :data:`MAX_TOKEN_SECONDS`) or the node restarts. The claims
fix *who* reads and *why*; every use re-resolves the key against committed state (a revoked member's
token stops working at the next block) and every read under it is audited under that key.

A signed read of the facade is checked as protocol.md section 4.3 says, and accepted once
(REQUEST_REPLAYED), like every signed request.

Refusals: MISSING_SIGNATURE (no credentials), TOKEN_INVALID (not a token this node issued, tampered,
or another Authorization scheme), TOKEN_EXPIRED, BAD_SIGNATURE, REQUEST_STALE / REQUEST_REPLAYED /
REQUEST_MALFORMED (the token request, or a signed read), UNKNOWN_SIGNER, SIGNER_REVOKED, UNAUTHORISED (a scope
that does not cover the interaction).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from careledger.contracts import identity
from careledger.contracts.base import Signer
from careledger.contracts.consent import Purpose, StudyId, acts_for_patient
from careledger.core import codec
from careledger.core.crypto import CryptoSuite
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.state import StateReader
from careledger.vault.requests import (
    FRESHNESS_MS,
    SCHEME,
    ReplayGuard,
    RequestBody,
    SignedRequest,
    is_signed,
    verify_request,
)

MAX_TOKEN_SECONDS = 300
"""A token lives five minutes at most (SMART Backend Services asks for no more)."""
TOKEN_PREFIX = "clt1"
TOKEN_DOMAIN = b"CareLedger/fhir-token/v1\x00"
MAX_TOKEN_CHARS = 2048
Interaction = Literal["read", "search"]

_SCOPE_ITEM = r"(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.(read|\*|rs|r|s)"
_SCOPE = re.compile(f"^{_SCOPE_ITEM}$")
ScopeText = Annotated[str, StringConstraints(min_length=1, max_length=1000,
                                             pattern=f"^ *{_SCOPE_ITEM}( +{_SCOPE_ITEM})* *$")]
"""Space-separated read scopes (what :meth:`Scope.parse` takes), so that the OpenAPI schema says it too."""


@dataclass(frozen=True)
class Scope:
    """SMART scopes granted to a token: which interactions on which resource types.

    ``read`` and ``*`` (SMART v1) and ``rs`` grant read and search; ``r`` read only; ``s`` search only.
    The context level (``patient/``, ``user/``, ``system/``) is kept in the text; what a key may see
    is decided by the access rules, whatever the level.
    """

    text: str
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Raises REQUEST_MALFORMED for anything but space-separated read scopes."""
        grants: dict[str, set[str]] = {}
        for item in text.split():
            match = _SCOPE.match(item)
            if match is None:
                raise LedgerError(f"scope {item[:80]!r} is not a read scope such as 'system/*.read'",
                                  Code.REQUEST_MALFORMED)
            rights = {"r": {"read"}, "s": {"search"}}.get(match[3], {"read", "search"})
            grants.setdefault(match[2], set()).update(rights)
        if not grants:
            raise LedgerError("the scope is empty", Code.REQUEST_MALFORMED)
        return cls(" ".join(text.split()), {t: frozenset(r) for t, r in grants.items()})

    @classmethod
    def everything(cls, level: str) -> Scope:
        return cls(f"{level}/*.read", {"*": frozenset({"read", "search"})})

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        return any(interaction in self.grants.get(t, ()) for t in (resource_type, "*"))


@dataclass(frozen=True)
class Access:
    """An authenticated request to the facade: the signer as committed state knows it now, what the
    credentials grant, and the hash audit entries cite for it."""

    signer: Signer
    view: StateReader
    now_ms: int
    purpose: str
    emergency: bool
    study: str | None
    scope: Scope
    request_hash: str
    via: Literal["token", "signature"]

    @property
    def key(self) -> str:
        return self.signer.key

    @property
    def own_pseudonym(self) -> str | None:
        """The requester's pseudonym when the key is a registered patient's."""
        return identity.compute_pseudonym(self.signer.key) if self.signer.kind == "patient" else None

    def acts_for(self, pseudonym: str) -> str | None:
        """``patient`` or ``delegate`` when the requester may act for the patient now, else None."""
        return acts_for_patient(self.view, self.signer, pseudonym, self.now_ms)

    def require_acts_for(self, pseudonym: str) -> str:
        """Raises NOT_PATIENT_OR_DELEGATE unless the requester is the patient or an active delegate."""
        role = self.acts_for(pseudonym)
        if role is None:
            raise LedgerError("only the patient or the patient's delegate sees this patient's "
                              "consents, access log and record history", Code.NOT_PATIENT_OR_DELEGATE)
        return role

    def require_scope(self, resource_type: str, interaction: Interaction) -> None:
        """Raises UNAUTHORISED when the token's scope does not cover ``interaction`` on the type."""
        if not self.scope.allows(resource_type, interaction):
            raise LedgerError(f"the token's scope ({self.scope.text}) does not cover {interaction} of "
                              f"{resource_type}", Code.UNAUTHORISED)


class TokenRequest(RequestBody):
    """The signed request a key exchanges for a bearer token (the body of ``POST /fhir/auth/token``)."""

    kind: Literal["token"]
    scope: ScopeText | None = None
    purpose: Purpose | None = None
    emergency: bool = False
    study: StudyId | None = None
    expires_in: Annotated[int, Field(ge=1, le=MAX_TOKEN_SECONDS)] = MAX_TOKEN_SECONDS


TOKEN_KINDS: Mapping[str, type[RequestBody]] = {"token": TokenRequest}
"""The kinds the token endpoint takes."""


@dataclass(frozen=True)
class Grant:
    """The verified claims of a bearer token."""

    key: str
    jti: str
    exp_ms: int
    purpose: str
    emergency: bool
    study: str | None
    scope: Scope


def default_purpose(signer: Signer) -> str:
    """A patient reads at their own request (PATRQT); anyone else for treatment (TREAT)."""
    return "PATRQT" if signer.kind == "patient" else "TREAT"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def resolve_active(view: StateReader, key: str) -> Signer:
    """The key's signer now; raises UNKNOWN_SIGNER (not registered) or SIGNER_REVOKED (inactive)."""
    signer = identity.resolve_signer(view, key)
    if signer.kind == "unregistered":
        raise AuthError("the key is neither a consortium member nor a registered patient", Code.UNKNOWN_SIGNER)
    if not signer.active:
        raise AuthError("the key, or its organisation, is revoked", Code.SIGNER_REVOKED)
    return signer


class TokenIssuer:
    """Mints and checks this node's bearer tokens (see the module docstring)."""

    def __init__(self, chain_id: str, suite: CryptoSuite, *, clock: Callable[[], float] = time.time,
                 secret: bytes | None = None, window_ms: int = FRESHNESS_MS) -> None:
        self.chain_id = chain_id
        self.suite = suite
        self.clock = clock
        self.window_ms = window_ms
        self._secret = secret if secret is not None else os.urandom(32)
        self._exchanges = ReplayGuard(window_ms)
        self._signed_reads = ReplayGuard(window_ms)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _mac(self, claims: bytes) -> bytes:
        message = TOKEN_DOMAIN + self.chain_id.encode("ascii") + b"\x00" + claims
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    # -- the exchange -----------------------------------------------------------------------------------------
    def exchange(self, request: SignedRequest, view: StateReader) -> dict[str, Any]:
        """Verify a signed ``token`` request and mint a token for its requester.

        Returns the OAuth 2.0 token response (``access_token``, ``token_type``, ``expires_in``,
        ``scope``, and ``patient`` for a patient's own key). Raises MISSING_SIGNATURE, BAD_SIGNATURE,
        REQUEST_STALE, REQUEST_MALFORMED, REQUEST_REPLAYED, UNKNOWN_SIGNER, SIGNER_REVOKED.
        """
        verified = verify_request(request, self.chain_id, self.suite, self.now_ms(), kinds=TOKEN_KINDS,
                                  guard=self._exchanges, window_ms=self.window_ms)
        req: TokenRequest = verified.body
        signer = resolve_active(view, verified.requester)
        level = "patient" if signer.kind == "patient" else "system"
        scope = Scope.parse(req.scope) if req.scope is not None else Scope.everything(level)
        purpose = req.purpose or default_purpose(signer)
        now = self.now_ms()
        claims: dict[str, Any] = {"emergency": req.emergency, "exp_ms": now + req.expires_in * 1000,
                                  "iat_ms": now, "jti": os.urandom(16).hex(), "purpose": purpose,
                                  "scope": scope.text, "sub": verified.requester}
        if req.study is not None:
            claims["study"] = req.study
        body = codec.encode(claims)
        token = f"{TOKEN_PREFIX}.{_b64(body)}.{_b64(self._mac(body))}"
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": req.expires_in,
                                  "scope": scope.text, "purpose": purpose}
        if signer.kind == "patient":
            answer["patient"] = identity.compute_pseudonym(signer.key)  # the identity key, after a rotation too
        return answer

    # -- using a token ----------------------------------------------------------------------------------------
    def verify(self, token: str) -> Grant:
        """The claims of a token this node issued and that has not expired.

        Raises TOKEN_INVALID (malformed, another node's, issued before a restart, or tampered) or
        TOKEN_EXPIRED.
        """
        parts = token.split(".")
        if len(token) > MAX_TOKEN_CHARS or len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise AuthError("the bearer token is not a CareLedger token", Code.TOKEN_INVALID)
        try:
            body, mac = _unb64(parts[1]), _unb64(parts[2])
        except (binascii.Error, ValueError):
            raise AuthError("the bearer token is not base64url", Code.TOKEN_INVALID) from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise AuthError("the bearer token was not issued by this node (or it restarted since)",
                            Code.TOKEN_INVALID)
        claims = codec.decode(body)
        assert isinstance(claims, dict)  # we minted it
        if self.now_ms() >= claims["exp_ms"]:
            raise AuthError("the bearer token has expired: exchange a new one", Code.TOKEN_EXPIRED)
        return Grant(str(claims["sub"]), str(claims["jti"]), int(claims["exp_ms"]), str(claims["purpose"]),
                     bool(claims["emergency"]), claims.get("study"), Scope.parse(str(claims["scope"])))

    # -- authenticating a facade request ----------------------------------------------------------------------
    def authenticate(self, view: StateReader, request: SignedRequest) -> Access:
        """Who asks, from ``Authorization: Bearer <token>`` or a signed request (``CareLedger-Request``);
        the signer is re-resolved against committed state every time.

        Raises MISSING_SIGNATURE (no Authorization), TOKEN_INVALID (another scheme), the token and
        signed-request refusals, UNKNOWN_SIGNER and SIGNER_REVOKED.
        """
        now = self.now_ms()
        authorization = request.authorization
        if authorization is None:
            raise AuthError(f"this read needs 'Authorization: Bearer <token>' or a signed request "
                            f"('Authorization: {SCHEME} …', protocol.md section 4.3)", Code.MISSING_SIGNATURE)
        if is_signed(authorization):
            verified = verify_request(request, self.chain_id, self.suite, now, guard=self._signed_reads,
                                      window_ms=self.window_ms)
            signer = resolve_active(view, verified.requester)
            return Access(signer, view, now, default_purpose(signer), False, None,
                          Scope.everything("patient" if signer.kind == "patient" else "system"), verified.hash,
                          "signature")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(f"Authorization must be 'Bearer <token>' or '{SCHEME} …'", Code.TOKEN_INVALID)
        grant = self.verify(token.strip())
        signer = resolve_active(view, grant.key)
        digest = codec.encode({"at_ms": now, "method": request.method.upper(), "target": request.target,
                               "token": grant.jti})
        return Access(signer, view, now, grant.purpose, grant.emergency, grant.study, grant.scope,
                      hashlib.sha256(digest).hexdigest(), "token")


__all__ = ["MAX_TOKEN_SECONDS", "TOKEN_KINDS", "Access", "Grant", "Scope", "TokenIssuer", "TokenRequest",
           "default_purpose", "resolve_active"]
