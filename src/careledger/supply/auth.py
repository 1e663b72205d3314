"""Who asks for supply alerts: a signed request (:mod:`careledger.vault.requests`, the one scheme of
every signed read) by an active organisation admin or member.

``GET /v1/supply/alerts`` is a signed GET: ``Authorization: CareLedger-Request key=…, time=…, nonce=…,
sig=…`` over the method, the path and query exactly as sent, and the empty body. The node answers
for the key's organisation as committed state knows it now, and accepts each signed request once.
"""

from __future__ import annotations

from dataclasses import dataclass

from careledger.contracts import identity
from careledger.core.crypto import CryptoSuite
from careledger.core.errors import AuthError, Code
from careledger.core.state import StateReader
from careledger.vault.requests import ReplayGuard, SignedRequest, verify_request


@dataclass(frozen=True)
class Requester:
    """A member who signed a supply read, with its organisation's roles and its own."""

    key: str
    org: str
    org_roles: tuple[str, ...]
    member_roles: tuple[str, ...]


def member_of(state: StateReader, key: str) -> Requester:
    """The active admin or member ``key`` is; raises UNKNOWN_SIGNER (not a member) or SIGNER_REVOKED."""
    signer = identity.resolve_signer(state, key)
    if signer.kind not in ("admin", "member") or signer.org is None:
        raise AuthError("the request's key is not a consortium member", Code.UNKNOWN_SIGNER)
    if not signer.active:
        raise AuthError("the request's key is revoked", Code.SIGNER_REVOKED)
    org = identity.get_org(state, signer.org)
    return Requester(key, signer.org, () if org is None else org.roles, signer.roles)


def verify_member_request(request: SignedRequest, chain_id: str, suite: CryptoSuite, state: StateReader,
                          now_ms: int, guard: ReplayGuard | None) -> Requester:
    """Who signed this bodiless request; raises the signed-request refusals (MISSING_SIGNATURE,
    BAD_SIGNATURE, REQUEST_STALE, REQUEST_MALFORMED, REQUEST_REPLAYED), UNKNOWN_SIGNER and SIGNER_REVOKED."""
    verified = verify_request(request, chain_id, suite, now_ms, guard=guard)
    return member_of(state, verified.requester)


__all__ = ["Requester", "member_of", "verify_member_request"]
