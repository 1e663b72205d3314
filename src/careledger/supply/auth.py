"""Signed read requests: how a member proves who asks, without sessions.

The client sends three headers with a GET::

    X-CareLedger-Key        the member's Ed25519 public key (hex)
    X-CareLedger-Timestamp  milliseconds since the Unix epoch (decimal)
    X-CareLedger-Signature  hex Ed25519 signature, in signing domain "request", over
                            METHOD + "\\n" + TARGET + "\\n" + TIMESTAMP

where TARGET is the request's path and query exactly as sent (``/v1/supply/alerts?kind=possible_clone``).
The node accepts a timestamp within ±5 minutes of its own clock and answers for the key's
organisation as committed state knows it now (active admins and members only). A captured request
can be replayed within those minutes, for the same read only; use TLS.
"""

from __future__ import annotations

from dataclasses import dataclass

from careledger.contracts import identity
from careledger.core.crypto import CryptoSuite, SigningKey, parse_public_key
from careledger.core.errors import AuthError, Code
from careledger.core.state import StateReader

KEY_HEADER = "X-CareLedger-Key"
TIMESTAMP_HEADER = "X-CareLedger-Timestamp"
SIGNATURE_HEADER = "X-CareLedger-Signature"
MAX_SKEW_MS = 5 * 60 * 1000


def request_message(method: str, target: str, timestamp_ms: int) -> bytes:
    return f"{method.upper()}\n{target}\n{timestamp_ms}".encode()


def sign_request(key: SigningKey, chain_id: str, method: str, target: str, timestamp_ms: int) -> dict[str, str]:
    """The three headers that sign ``method target`` at ``timestamp_ms``."""
    sig = key.sign("request", chain_id, request_message(method, target, timestamp_ms))
    return {KEY_HEADER: key.public_hex, TIMESTAMP_HEADER: str(timestamp_ms), SIGNATURE_HEADER: sig.hex()}


@dataclass(frozen=True)
class Requester:
    key: str
    org: str
    org_roles: tuple[str, ...]
    member_roles: tuple[str, ...]


def verify_request(suite: CryptoSuite, chain_id: str, state: StateReader, method: str, target: str,
                   headers: dict[str, str], now_ms: int) -> Requester:
    """Who signed this request; raises AuthError (MISSING_SIGNATURE, BAD_SIGNATURE, UNKNOWN_SIGNER,
    SIGNER_REVOKED)."""
    key, stamp, sig = (headers.get(h.lower()) for h in (KEY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    if not key or not stamp or not sig:
        raise AuthError(f"this read needs a signed request ({KEY_HEADER}, {TIMESTAMP_HEADER}, {SIGNATURE_HEADER})",
                        Code.MISSING_SIGNATURE)
    if not stamp.isdigit() or len(stamp) > 15:
        raise AuthError(f"{TIMESTAMP_HEADER} must be milliseconds since the epoch", Code.BAD_SIGNATURE)
    timestamp = int(stamp)
    if abs(now_ms - timestamp) > MAX_SKEW_MS:
        raise AuthError("request timestamp is more than 5 minutes from the node's clock", Code.BAD_SIGNATURE)
    try:
        signature = bytes.fromhex(sig)
    except ValueError:
        raise AuthError(f"{SIGNATURE_HEADER} is not hex", Code.BAD_SIGNATURE) from None
    public = parse_public_key(key)
    suite.verify(public, "request", chain_id, request_message(method, target, timestamp), signature)
    signer = identity.resolve_signer(state, key)
    if signer.kind not in ("admin", "member") or signer.org is None:
        raise AuthError("the request's key is not a consortium member", Code.UNKNOWN_SIGNER)
    if not signer.active:
        raise AuthError("the request's key is revoked", Code.SIGNER_REVOKED)
    org = identity.get_org(state, signer.org)
    return Requester(key, signer.org, () if org is None else org.roles, signer.roles)
