"""The FHIR R4 facade, without HTTP: who asks, which provider answers, and FHIR JSON that validates.

:class:`FhirFacade` holds one provider per resource type (:class:`~.fhir_search.ResourceProvider`):
the ledger's own resources (:mod:`.fhir_ledger`: Consent, AuditEvent, Provenance; the claims,
research and trials shells add theirs) and, for every other resource type a vault can hold, the
clinical records provider (:mod:`.fhir_records`). A record id (``r-`` + 32 hex digits) is always
read from the vaults, whatever the type: ``GET /fhir/Provenance/r-…`` is a Provenance *record* a
custodian stored, ``GET /fhir/Provenance/r-…-1`` the ledger's Provenance of a record version.

Everything the facade emits is validated with the ``fhir.resources`` R4B models before it leaves
(:class:`FhirValidator`; each distinct resource once, then remembered by digest). A resource that
fails is a defect of the facade: the answer is INTERNAL_ERROR, and the log names the type and the
element paths, never a value.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from pydantic import ValidationError

from careledger import __version__
from careledger.core.errors import Code, LedgerError
from careledger.vault.canonical import json_of_canonical
from careledger.vault.fhir_access import Access, TokenIssuer
from careledger.vault.fhir_records import RECORD_ID, RECORD_PARAMS, RecordResources
from careledger.vault.fhir_search import ResourceProvider, parse_query, searchset
from careledger.vault.gateway import Gateway
from careledger.vault.ledger import LedgerPort
from careledger.vault.requests import SignedRequest

log = logging.getLogger("careledger.fhir")

FHIR_VERSION = "4.0.1"
NOT_RECORD_TYPES = frozenset({"Bundle", "Parameters", "OperationOutcome", "CapabilityStatement"})
"""Resource types the vaults never hold (or the facade itself answers with): no provider serves them."""
RECORD_TYPES = ("AllergyIntolerance", "CarePlan", "CareTeam", "Claim", "Condition", "DiagnosticReport",
                "DocumentReference", "Encounter", "ExplanationOfBenefit", "Immunization", "Location",
                "MedicationRequest", "Observation", "Organization", "Patient", "Practitioner", "PractitionerRole",
                "Procedure")
"""Clinical types the CapabilityStatement lists (those of the Synthea bundles and common US Core ones);
any other resource type a vault holds is read and searched the same way."""
TOKEN_PATH = "/auth/token"


@lru_cache(maxsize=512)
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


def is_resource_type(name: str) -> bool:
    """Is ``name`` an R4B resource type?"""
    return name[:1].isupper() and name.isalpha() and len(name) <= 64 and _model(name) is not None


def emit(value: Mapping[str, Any]) -> bytes:
    """FHIR JSON of a value in the vault's exact form: compact, keys sorted, each tagged decimal
    (``{"$decimal": "1.50"}``, see :mod:`.canonical`) written back as its exact number text.

    orjson writes the same compact JSON the codec does for these values, and inside its strings every
    ``"`` is escaped, so :func:`~careledger.vault.canonical.json_of_canonical` applies unchanged.
    """
    return json_of_canonical(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


class FhirValidator:
    """Validates emitted resources with the R4B models, remembering the digests of those that passed."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._passed: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def json(self, resource: Mapping[str, Any]) -> bytes:
        """The resource's FHIR JSON (decimals exact), after validating it; raises INTERNAL_ERROR if invalid."""
        data = emit(resource)
        digest = hashlib.sha256(data).digest()
        with self._lock:
            if digest in self._passed:
                self._passed.move_to_end(digest)
                return data
        rtype = str(resource.get("resourceType"))
        model = _model(rtype)
        try:
            if model is None:
                raise ValueError(f"no R4B model for {rtype[:64]}")
            model.model_validate_json(data)
        except (ValidationError, ValueError) as exc:
            paths = ([".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()[:5]]
                     if isinstance(exc, ValidationError) else [])
            log.error("the FHIR facade built an invalid %s (paths: %s)", rtype[:64], ", ".join(paths))
            raise LedgerError(f"the facade built an invalid {rtype[:64]}", Code.INTERNAL_ERROR) from None
        with self._lock:
            self._passed[digest] = None
            if len(self._passed) > self.capacity:
                self._passed.popitem(last=False)
        return data

    def bundle(self, bundle: Mapping[str, Any]) -> bytes:
        """A Bundle's JSON: each entry's resource validated on its own (and remembered), then the Bundle
        itself without them (so a page of known resources costs no model validation)."""
        entries = bundle.get("entry", [])
        for entry in entries:
            self.json(entry["resource"])
        shell = {**bundle, "entry": [{k: v for k, v in e.items() if k != "resource"} for e in entries]}
        if not entries:
            shell.pop("entry")
        self.json(shell)
        return emit(bundle)


class FhirFacade:
    """One node's FHIR facade: its providers, its token issuer, its validator."""

    def __init__(self, ledger: LedgerPort, gateway: Gateway | None, providers: Iterable[ResourceProvider], *,
                 clock: Callable[[], float] = time.time, issuer: TokenIssuer | None = None) -> None:
        self.ledger = ledger
        self.gateway = gateway
        self.providers: dict[str, ResourceProvider] = {}
        for provider in providers:
            if provider.resource_type in self.providers:
                raise ValueError(f"two FHIR providers for {provider.resource_type}")
            self.providers[provider.resource_type] = provider
        self.issuer = issuer if issuer is not None else TokenIssuer(ledger.chain_id, ledger.suite, clock=clock)
        self.validator = FhirValidator()
        self._records: dict[str, RecordResources] = {}
        self._started = datetime.fromtimestamp(clock(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    # -- who asks -------------------------------------------------------------------------------------------
    def authenticate(self, request: SignedRequest) -> Access:
        """See :meth:`careledger.vault.fhir_access.TokenIssuer.authenticate`."""
        return self.issuer.authenticate(self.ledger.view(), request)

    def exchange(self, request: SignedRequest) -> dict[str, Any]:
        """A signed ``token`` request for a bearer token (:meth:`TokenIssuer.exchange`)."""
        return self.issuer.exchange(request, self.ledger.view())

    # -- which provider -------------------------------------------------------------------------------------
    def provider(self, resource_type: str, resource_id: str | None = None) -> ResourceProvider:
        """The provider of ``resource_type`` (of the vaults' records for a record id); FHIR_TYPE_UNKNOWN."""
        registered = self.providers.get(resource_type)
        if registered is not None and (resource_id is None or not RECORD_ID.match(resource_id)):
            return registered
        if self.gateway is not None and resource_type not in NOT_RECORD_TYPES and is_resource_type(resource_type):
            records = self._records.get(resource_type)
            if records is None:
                records = self._records[resource_type] = RecordResources(self.gateway, resource_type)
            return records
        raise LedgerError(f"this server has no resource type {resource_type[:64]!r} (see /fhir/metadata)",
                          Code.FHIR_TYPE_UNKNOWN)

    # -- interactions ---------------------------------------------------------------------------------------
    def read(self, access: Access, resource_type: str, resource_id: str) -> bytes:
        """``GET [base]/<type>/<id>``: the resource's FHIR JSON. Raises FHIR_TYPE_UNKNOWN, UNAUTHORISED
        (scope), and the provider's not-found and access refusals."""
        provider = self.provider(resource_type, resource_id)
        access.require_scope(resource_type, "read")
        return self.validator.json(provider.read(access, resource_id))

    def search(self, access: Access, resource_type: str, params: Sequence[tuple[str, str]], base: str,
               *, lenient: bool = False) -> bytes:
        """``GET [base]/<type>?…``: a searchset Bundle's FHIR JSON. Raises FHIR_TYPE_UNKNOWN,
        UNAUTHORISED (scope), FHIR_SEARCH_INVALID and the provider's access refusals."""
        provider = self.provider(resource_type)
        access.require_scope(resource_type, "search")
        query = parse_query(params, provider.search_params, lenient=lenient)
        page = provider.search(access, query)
        return self.validator.bundle(searchset(base, resource_type, query, page))

    # -- discovery ------------------------------------------------------------------------------------------
    def capability_statement(self, base: str) -> bytes:
        """The CapabilityStatement: every provider's type with read and search-type and its search
        parameters, the clinical record types, and the SMART token endpoint."""
        resources = []
        types = {**{t: None for t in RECORD_TYPES}, **self.providers}
        for rtype in sorted(types):
            registered = self.providers.get(rtype)
            params = registered.search_params if registered is not None else RECORD_PARAMS
            resources.append({
                "type": rtype, "interaction": [{"code": "read"}, {"code": "search-type"}],
                "versioning": "no-version", "readHistory": False, "updateCreate": False,
                "searchParam": [{"name": p.name, "type": p.type, "definition": p.definition,
                                 "documentation": p.documentation} for p in params],
            })
        statement = {
            "resourceType": "CapabilityStatement", "id": "careledger", "status": "active", "date": self._started,
            "publisher": "CareLedger", "kind": "instance", "fhirVersion": FHIR_VERSION,
            "format": ["json", "application/fhir+json"],
            "software": {"name": "CareLedger", "version": __version__},
            "implementation": {"description": f"CareLedger node of consortium {self.ledger.chain_id}: "
                                              "ledger-held resources and the custodians' records under consent",
                               "url": base},
            "rest": [{
                "mode": "server",
                "documentation": "Read and search only. Consent, AuditEvent and Provenance come from the ledger; "
                                 "clinical records (ids r-…) from this node's vaults, under the patient's "
                                 "consent, each read audited on the ledger. Searches are per patient "
                                 "(patient=pt-…). Paging: _count (at most 100) and _offset.",
                "security": {
                    "cors": False,
                    "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                             "code": "SMART-on-FHIR"}]}],
                    "description": "Authorization: Bearer <token> from POST " + base + TOKEN_PATH + " (a signed "
                                   "request, SMART Backend Services style), or a signed request on each "
                                   "read: Authorization: CareLedger-Request key=…, time=…, nonce=…, sig=….",
                    "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                                   "extension": [{"url": "token", "valueUri": base + TOKEN_PATH}]}],
                },
                "resource": resources,
            }],
        }
        return self.validator.json(statement)


def smart_configuration(base: str) -> dict[str, Any]:
    """``.well-known/smart-configuration``: where and how to get a token."""
    return {"token_endpoint": base + TOKEN_PATH, "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["careledger-signed-request"],
            "scopes_supported": ["system/*.read", "patient/*.read", "system/*.rs", "patient/*.rs"],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"]}


__all__ = ["FHIR_VERSION", "RECORD_TYPES", "FhirFacade", "FhirValidator", "emit", "is_resource_type",
           "smart_configuration"]
