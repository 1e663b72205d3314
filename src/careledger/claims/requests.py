"""The claims kinds of a signed request to a node's claims desk: documents to prepare, and claim queries.

A claims request is a signed request like every other (docs/protocol.md section 4.3,
:mod:`careledger.vault.requests`: the ``Authorization: CareLedger-Request …`` header over the method,
the target and every byte of the body; freshness ±5 min; each accepted once), whose JSON body is one
of these typed requests. Who signs is the header's ``key``. The signature covers a prepared
document itself (the ``resource`` member), so no separate commitment to it is signed.

Kinds, each taken by one route:

* ``claim.prepare``       custodian (the provider), patient, encounter, coverage, insurer, resource (the
                          FHIR ``Claim``), replaces, prior_payer_claim — ``POST /v1/claims/prepare``;
* ``coverage.prepare``    custodian (the insurer), patient, resource (the FHIR ``Coverage``), coverage (the
                          coverage a new version updates; absent to register one) —
                          ``POST /v1/claims/coverages/prepare``;
* ``claims.status``       claim — one claim with its adjudications, payments, appeals and flags;
* ``claims.list``         patient — a patient's claims;
* ``claims.flags``        insurer, since_height — an insurer's flag feed;
* ``claims.coverages``    patient — a patient's coverages;
* ``claims.eligibility``  patient, day (UTC days since 1970-01-01), insurer — FHIR CoverageEligibilityResponse
  (``POST /v1/claims/status``, ``/list``, ``/flags``, ``/coverages``, ``/eligibility``).

The intake (``POST /v1/claims/intake``) carries the insurer officer's signed gateway ``read``s as
:class:`ForwardedRead`: each signed for ``POST /v1/gateway/read`` at the custodian's gateway, which the
desk hands it to unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from careledger.contracts.claims.handlers import ClaimId, CoverageId, Day
from careledger.contracts.records import Pseudonym, RecordId
from careledger.core.types import NonNegativeInt, OrgId
from careledger.vault.requests import RequestBody, SignedRequest

READ_TARGET = "/v1/gateway/read"
"""The target a forwarded read is signed for (the custodian's gateway route)."""


class ClaimPrepare(RequestBody):
    """A provider's claims officer hands a FHIR Claim (``resource``) to its node's desk."""

    kind: Literal["claim.prepare"]
    custodian: OrgId
    patient: Pseudonym
    encounter: RecordId
    coverage: CoverageId
    insurer: OrgId
    resource: dict[str, Any] = Field(description="The FHIR R4 Claim (professional or institutional; decimals "
                                                 "kept exactly).")
    replaces: ClaimId | None = None
    prior_payer_claim: ClaimId | None = None


class CoveragePrepare(RequestBody):
    """An insurer's claims officer hands a FHIR Coverage (``resource``) to its node's desk."""

    kind: Literal["coverage.prepare"]
    custodian: OrgId
    patient: Pseudonym
    resource: dict[str, Any] = Field(description="The FHIR R4 Coverage (decimals kept exactly).")
    coverage: CoverageId | None = None


class ClaimStatusQuery(RequestBody):
    kind: Literal["claims.status"]
    claim: ClaimId


class PatientClaimsQuery(RequestBody):
    kind: Literal["claims.list"]
    patient: Pseudonym


class FlagsQuery(RequestBody):
    kind: Literal["claims.flags"]
    insurer: OrgId
    since_height: NonNegativeInt = 0


class CoveragesQuery(RequestBody):
    kind: Literal["claims.coverages"]
    patient: Pseudonym


class EligibilityQuery(RequestBody):
    kind: Literal["claims.eligibility"]
    patient: Pseudonym
    day: Day | None = None
    insurer: OrgId | None = None


class ForwardedRead(BaseModel):
    """An officer's signed gateway ``read`` handed to the desk to forward: the request's ``Authorization``
    header value and its body's exact text, as signed for ``POST /v1/gateway/read``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    authorization: Annotated[str, Field(max_length=512, description="Authorization: CareLedger-Request …")]
    body: Annotated[str, Field(max_length=16_384, description="The read request's JSON text, exactly as signed.")]

    def signed(self) -> SignedRequest:
        """The read as the custodian's gateway receives it."""
        return SignedRequest("POST", READ_TARGET, self.body.encode("utf-8"), self.authorization)


PREPARE_KINDS: Mapping[str, type[RequestBody]] = {"claim.prepare": ClaimPrepare, "coverage.prepare": CoveragePrepare}
QUERY_KINDS: Mapping[str, type[RequestBody]] = {
    "claims.status": ClaimStatusQuery, "claims.list": PatientClaimsQuery, "claims.flags": FlagsQuery,
    "claims.coverages": CoveragesQuery, "claims.eligibility": EligibilityQuery}
"""Each query route's one kind, by name."""


__all__ = ["PREPARE_KINDS", "QUERY_KINDS", "READ_TARGET", "ClaimPrepare", "ClaimStatusQuery", "CoveragePrepare",
           "CoveragesQuery", "EligibilityQuery", "FlagsQuery", "ForwardedRead", "PatientClaimsQuery"]
