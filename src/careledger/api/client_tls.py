"""Mutual TLS for the custodian gateway: organisations fetching records present their certificate.

With ``client_tls = "organisations"`` (:class:`~careledger.api.settings.ApiSettings`), a request to
read clinical content (``POST /v1/gateway/read``, and the FHIR facade's token exchange, which leads
to the same reads) whose signed requester (the ``key`` of its ``Authorization: CareLedger-Request``
header, docs/protocol.md section 4.3) is an admin or member of an organisation must arrive over a TLS
connection presenting a client certificate (verified by the server against ``tls_client_ca``) whose
SHA-256 fingerprint that organisation registered on the ledger with ``identity.set_org_tls``.
Otherwise it is refused before anything is decided or audited:

* no client certificate on the connection: ``401 CLIENT_CERT_REQUIRED`` (932);
* a certificate the requester's organisation did not register: ``403 CLIENT_CERT_NOT_REGISTERED`` (933).

Requests signed by a patient or a delegate who is not an organisation's member need no certificate
(people have no organisation certificate); the signature itself is still checked by the gateway,
so naming a patient as requester does not get around the rule without the patient's key.
"""

from __future__ import annotations

import hashlib
import ssl

from fastapi import Request

from careledger.contracts.identity import org_tls_fingerprints, resolve_signer
from careledger.core.errors import Code, LedgerError
from careledger.node.engine import Engine
from careledger.vault.requests import SignedRequest, parse_authorization


def client_certificate(request: Request) -> bytes | None:
    """The DER client certificate of the request's TLS connection (ASGI TLS extension), if it sent one."""
    tls = (request.scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None


def fingerprint(der: bytes) -> str:
    """A certificate's fingerprint as the ledger holds it: SHA-256 of its DER encoding, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def require_org_certificate(request: Request, engine: Engine, signed: SignedRequest) -> None:
    """Enforce the module's rule for the signed request ``signed`` (its requester is the ``key`` of its
    ``Authorization: CareLedger-Request`` header) when the app requires organisation certificates; a
    request too malformed to name its requester is left to the verifier, which refuses it. Raises
    CLIENT_CERT_REQUIRED or CLIENT_CERT_NOT_REGISTERED."""
    settings = request.app.state.settings
    if settings.client_tls != "organisations":
        return
    try:
        requester = parse_authorization(signed.authorization).requester
    except LedgerError:
        return
    view = engine.store.view()
    signer = resolve_signer(view, requester)
    if signer.kind not in ("admin", "member") or signer.org is None:
        return
    der = client_certificate(request)
    if der is None:
        raise LedgerError(f"members of {signer.org} read through this gateway over TLS with their organisation's "
                          "client certificate", Code.CLIENT_CERT_REQUIRED)
    if fingerprint(der) not in org_tls_fingerprints(view, signer.org):
        raise LedgerError(f"this client certificate is not one {signer.org} registered (identity.set_org_tls)",
                          Code.CLIENT_CERT_NOT_REGISTERED)
