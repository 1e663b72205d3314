"""Request and response shapes of the research routes (docs/http-api.md, "Research"), for the OpenAPI document.

Routes read their bodies with :func:`careledger.api.common.read_body` (media type and size checked
first) and check signed requests themselves, so the request models describe the bodies without
FastAPI parsing them: the signed routes declare their research kinds
(:mod:`careledger.research.requests`) with :func:`careledger.api.common.signed_route`, and
:func:`body` inlines the linkage body's JSON schema as its route's ``requestBody``. Response models
allow extra fields, as :mod:`.schemas` does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from careledger.api.common import inline_defs
from careledger.api.schemas import ErrorDetail
from careledger.research.requests import LinkageStatement


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- request bodies ---------------------------------------------------------------------------------------

class LinkageBody(BaseModel):
    custodian: str = Field(description="The custodian organisation the statement is handed to.")
    statement: LinkageStatement


def body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the route's JSON request body (its schema inlined)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": inline_defs(model.model_json_schema())}}}}


# --- the registry -----------------------------------------------------------------------------------------

class StudySummary(_Open):
    id: str
    kind: Literal["data", "trial"]
    version: int
    status: Literal["active", "closed"]
    sponsor: str
    title: str
    category: str
    purpose: str
    period_start_ms: int
    period_end_ms: int | None
    consent_version: int = Field(description="Consents given for an earlier version no longer cover the study.")


class StudyList(_Open):
    studies: list[StudySummary]


class Cohort(_Open):
    conditions_any: list[str]
    sex: list[str]
    birth_year_min: int | None
    birth_year_max: int | None


class RequestedData(_Open):
    resource_types: list[str]
    elements: list[str]
    cohort: Cohort


class Anonymity(_Open):
    quasi_identifiers: list[str]
    k: int
    l: int | None  # noqa: E741
    sensitive_type: str | None
    sensitive_codes: list[str]
    max_suppression_bp: int


class Study(_Open):
    """A study record (careledger.contracts.research.StudyRecord)."""

    id: str
    kind: Literal["data", "trial"]
    version: int
    status: Literal["active", "closed"]
    sponsor: str
    title: str
    category: str
    ethics_ref: str
    purpose: str
    period_start_ms: int
    period_end_ms: int | None
    request: RequestedData
    anonymity: Anonymity
    consent_version: int
    registered_by: str
    registered_height: int
    registered_ms: int
    updated_height: int
    updated_ms: int
    registration: dict[str, Any] | None = Field(None, description="A trial's registration (WHO data set).")


class StudyVersion(_Open):
    version: int
    updated_height: int
    updated_ms: int
    consent_version: int
    status: str


class ReleaseSummary(_Open):
    id: str
    custodian: str
    recipient: str
    study_version: int
    status: Literal["anchoring", "complete"]
    subjects: int
    records: int
    k_achieved: int
    suppressed: int
    height: int
    time_ms: int


class StudyDetail(_Open):
    study: Study
    versions: list[StudyVersion] = Field(description="Every version, oldest first.")
    releases: list[ReleaseSummary] = Field(description="Releases anchored for the study, oldest first.")


class ReleaseAnchor(_Open):
    """What the ledger anchors of a release (never the consent snapshot's pseudonyms)."""

    id: str
    study: str
    study_version: int
    custodian: str
    recipient: str
    dataset_root: str = Field(description="RFC 6962 Merkle root of the NDJSON records.")
    records: int
    subjects: int
    subjects_anchored: int
    snapshot_root: str = Field(description="Merkle root of the (study pseudonym, consent) pairs relied on.")
    resource_types: list[str]
    quasi_identifiers: list[str]
    config_hash: str
    rule_version: str
    zip3_list: str
    zip3_vintage: int
    k_required: int
    k_achieved: int
    l_required: int | None
    l_achieved: int | None
    suppressed: int
    as_of_day: int
    status: Literal["anchoring", "complete"]
    height: int
    time_ms: int
    completed_height: int | None


class QueryRecord(_Open):
    id: str
    study: str
    researcher: str
    query: dict[str, Any] = Field(description="The canonical spec: measure, sum_of, group_by, condition_codes, "
                                              "cohort.")
    query_hash: str
    height: int
    time_ms: int


class AnswerAnchor(_Open):
    query: str
    custodian: str
    answer_hash: str = Field(description="SHA-256 of the canonical answer the custodian delivers.")
    cells: int
    suppressed_cells: int
    contributors: int = Field(description="Consenting patients the cohort kept (0 when fewer than 11).")
    height: int
    time_ms: int


class QueryDetail(_Open):
    query: QueryRecord
    answers: list[AnswerAnchor] = Field(description="Every custodian's anchored answer, by custodian.")


# --- the gateway ------------------------------------------------------------------------------------------

class LinkageAccepted(_Open):
    custodian: str
    scope: Literal["study", "category"]
    subject: str = Field(description="The study pseudonym the custodian now knows to select.")
    target: str


class ReleaseReport(_Open):
    """The custodian's signed report (careledger.research.release.ReleaseReport)."""

    study: str
    study_version: int
    custodian: str
    recipient: str
    dataset_root: str
    records: int
    subjects: int
    suppressed: int
    excluded: int = Field(description="Consenting patients outside the study's cohort.")
    snapshot_root: str
    resource_types: list[str]
    quasi_identifiers: list[str]
    levels: list[int] = Field(description="Generalisation level of each quasi-identifier.")
    k_required: int
    k_achieved: int
    l_required: int | None
    l_achieved: int | None
    config_hash: str
    rule_version: str
    zip3_list: str
    zip3_vintage: int
    as_of_day: int
    files: dict[str, str] = Field(description="File name -> SHA-256.")


class ReleaseBuilt(_Open):
    release: str
    custodian: str
    study: str
    recipient: str
    height: int = Field(description="The block where the release became complete.")
    txs: list[str]
    report: ReleaseReport
    signature: str = Field(description="The custodian gateway key's signature of the report (domain proof).")
    signer: str
    generalisation: dict[str, int]


class ReleaseRefusal(_Open):
    """A release the kernel refused: the error, and a report of why (paths and counts, never values)."""

    error: ErrorDetail
    report: dict[str, Any] | None = None


class SealedPackage(_Open):
    header: dict[str, Any] = Field(description="{custodian, dataset_root, recipient, release, study}, bound as AAD.")
    ephemeral: str
    nonce: str
    ciphertext: str


class PackageView(_Open):
    release: str
    custodian: str
    status: Literal["anchoring", "complete"]
    package: SealedPackage


class Cell(_Open):
    group: dict[str, str]
    count: int | None = Field(description="null when suppressed")
    suppressed: bool
    sum: str | None = Field(None, description="Exact decimal text (sum queries); null when suppressed.")


class AggregateAnswer(_Open):
    query: str
    custodian: str
    query_hash: str
    cells: list[Cell]
    suppressed_cells: int
    contributors: int


class AnswerView(_Open):
    answer: AggregateAnswer
    anchor: AnswerAnchor


class ResearchConsent(_Open):
    id: str
    subject: str
    scope: Literal["study", "category"]
    target: str
    study_version: int | None
    resource_types: list[str]
    status: Literal["active", "revoked"]
    granted_height: int
    granted_ms: int
    revoked_height: int | None
    revoked_ms: int | None


class LogEntry(_Open):
    release: str
    study: str
    title: str
    custodian: str
    height: int
    time_ms: int
    date: str
    text: str = Field(examples=["de-identified data released to study study-… on 2026-12-03"])


class ResearchLog(_Open):
    subject: str
    consents: list[ResearchConsent]
    releases: list[LogEntry]
