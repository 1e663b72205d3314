"""Response shapes of the trials routes (:mod:`careledger.api.trials`), for the OpenAPI document and the
tests that hold the routes to them.

Routes return plain JSON, as every route does (see :mod:`careledger.api.schemas`); every field they
return is declared here, and ``tests/api/test_trials_api.py`` validates every answer against its
model. Models allow extra fields, so adding one is not a breaking change. The registration itself
is the contract's own typed model of the WHO data set
(:class:`careledger.contracts.trials.dataset.TrialRegistrationDataSet`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from careledger.contracts.trials.dataset import EthicsReview, SummaryResults, TrialRegistrationDataSet


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class LockView(_Open):
    height: int = Field(description="Height of the block that locked the database.")
    root: str = Field(description="The anchor tree's RFC 6962 root at lock, hex.")
    size: int = Field(description="Leaves (anchored visit versions) in the tree at lock.")
    time_ms: int


class TrialStatusView(_Open):
    recruitment: Literal["pending", "recruiting", "suspended", "complete", "other"]
    target: int = Field(description="Target sample size (WHO item 17).")
    enrolled: int
    randomised: bool
    masked: bool
    protocol_version: int = Field(description="The current protocol version.")
    reconsent_version: int = Field(description="The last protocol version that required (re-)consent.")
    next_slot: list[tuple[str, int]] = Field(description="[stratum, the next slot an enrolment reveals], sorted.")
    first_enrolment_height: int | None
    first_enrolment_ms: int | None
    lock: LockView | None
    results_height: int | None


class TrialSummary(_Open):
    trial: str
    sponsor: str
    public_title: str
    recruitment: str
    enrolled: int
    target: int
    registered_height: int
    registration_version: int
    locked: bool
    results: bool


class TrialList(_Open):
    trials: list[TrialSummary]
    height: int


class Randomisation(_Open):
    root: str = Field(description="RFC 6962 root of the allocation sequence's leaves, hex.")
    scheme: str
    strata: list[tuple[str, int]] = Field(description="[stratum, slots], sorted by name.")


class RegistrationView(_Open):
    """The registration as it stands, with the trial's status."""

    trial: str
    sponsor: str
    registered_by: str
    registered_height: int
    registered_ms: int
    version: int = Field(description="The registration version (every version is kept).")
    updated_height: int
    updated_ms: int
    dataset: TrialRegistrationDataSet
    randomisation: Randomisation | None
    status: TrialStatusView
    height: int = Field(description="The committed height this answer was read at.")


class RegistrationVersionView(_Open):
    version: int
    height: int
    time_ms: int
    by: str
    reason: str | None
    dataset: TrialRegistrationDataSet


class Baseline(_Open):
    version: int
    height: int
    rule: str = Field(description="Why this version is COMPare's baseline.")


class RegistrationHistory(_Open):
    trial: str
    versions: list[RegistrationVersionView] = Field(description="Every registration version, oldest first.")
    baseline: Baseline = Field(description="The version results are checked against (COMPare).")
    first_enrolment_height: int | None


class ProtocolVersionView(_Open):
    version: int
    document_hash: str
    consent_form_hash: str
    reason: str | None
    reconsent_required: bool
    height: int
    time_ms: int
    by: str


class ProtocolList(_Open):
    trial: str
    current: int
    reconsent_version: int
    versions: list[ProtocolVersionView]


class Investigator(_Open):
    key: str
    role: Literal["principal_investigator", "sub_investigator", "study_coordinator"]


class SiteView(_Open):
    org: str
    status: Literal["active", "suspended", "closed"]
    ethics: EthicsReview
    investigators: list[Investigator]
    height: int
    time_ms: int


class SiteList(_Open):
    trial: str
    sites: list[SiteView]


class AnchorsView(_Open):
    trial: str
    size: int = Field(description="Leaves in the anchor tree now.")
    root: str = Field(description="Its RFC 6962 root now, hex (O(log n) from the ledger's frontier).")
    lock: LockView | None
    height: int


class AnchorLeaf(_Open):
    protocol_version: int
    resources: list[tuple[str, str]] = Field(description="[FHIR resource type, salted commitment in the site's "
                                                         "vault].")
    site: str
    subject: str
    trial: str
    version: int
    visit: str


class AnchorProofView(_Open):
    """A visit version's RFC 9162 inclusion proof: leaf data = canonical JSON of ``leaf``."""

    trial: str
    subject: str
    visit: str
    version: int
    leaf: AnchorLeaf
    leaf_hash: str
    leaf_index: int
    tree_size: int
    root: str
    path: list[str] = Field(description="Audit path from the leaf upwards, hex.")
    against: Literal["lock", "current", "size"] = Field(description="Which tree: the locked one, the tree now, or "
                                                                    "the size asked for.")


class ReconsentList(_Open):
    trial: str
    reconsent_version: int
    subjects: list[str] = Field(description="Enrolled subjects whose consent predates the last re-consent-required "
                                            "amendment: their visits are refused until they re-consent.")


class SusarView(_Open):
    trial: str
    event: str
    site: str
    category: Literal["fatal_or_life_threatening", "other_serious"]
    day0_ms: int
    initial_due_ms: int | None
    complete_due_ms: int | None
    initial: Literal["not_required", "pending", "overdue", "on_time", "late"]
    complete: Literal["not_required", "pending", "overdue", "on_time", "late"]
    overdue: bool
    late: bool


class SafetyView(_Open):
    trial: str | None = Field(description="The trial, or null for every trial (the regulator's list).")
    as_of_ms: int = Field(description="The time report states are derived at.")
    latest_block_ms: int = Field(description="The latest committed block's time (the default as_of_ms).")
    forecast: bool = Field(description="as_of_ms is after the latest block: 'overdue' then means overdue at that "
                                       "time if no report commits before it.")
    height: int
    susars: list[SusarView]
    overdue: int = Field(description="How many SUSARs have a report overdue.")


class FlagView(_Open):
    kind: Literal["primary_added", "primary_dropped", "primary_demoted", "primary_changed", "time_frame_changed",
                  "secondary_added", "secondary_dropped", "secondary_changed", "results_late"]
    outcome: str | None
    declared: bool = Field(description="The change was declared with a reason (in the results, or by a registration "
                                       "amendment after the start); otherwise it is silent.")
    reason: str | None
    declared_in: str | None
    detail: str


class ReportedOutcome(_Open):
    id: str
    role: Literal["primary", "secondary"]
    measure: str
    method: str
    time_frame: str
    result: str
    change_reason: str | None


class OmittedOutcome(_Open):
    id: str
    reason: str


class ResultsView(_Open):
    trial: str
    height: int
    time_ms: int
    by: str
    baseline_version: int
    baseline_height: int | None
    primary_completion: str
    outcomes: list[ReportedOutcome]
    omitted: list[OmittedOutcome]
    dataset_hash: str
    summary: SummaryResults
    flags: list[FlagView]
    silent: int = Field(description="Flags without a declared reason.")


class EnrolmentView(_Open):
    subject: str
    site: str
    stratum: str | None
    slot: int | None
    sealed: str | None = Field(description="The allocation's leaf hash (what a masked trial's enrolment reveals).")
    arm: str | None = Field(description="Known for an open-label trial, or once unblinded.")
    consent_version: int
    height: int
    time_ms: int


class ConsentView(_Open):
    subject: str
    key: str = Field(description="The subject's study key (never a registered key).")
    version: int = Field(description="The protocol version consented to.")
    consent_form_hash: str
    status: Literal["active", "withdrawn"]
    height: int
    time_ms: int
    history: list[tuple[int, int]] = Field(description="[protocol version, height] of every consent given.")


class SubjectView(_Open):
    trial: str
    subject: str
    enrolment: EnrolmentView | None
    consent: ConsentView | None
    awaiting_reconsent: bool


class FhirResource(_Open):
    """A FHIR R4 resource (validated with the fhir.resources R4B model of its type before it is sent)."""

    resourceType: str  # noqa: N815 (FHIR's own name)


__all__ = ["AnchorLeaf", "AnchorProofView", "AnchorsView", "Baseline", "ConsentView", "EnrolmentView",
           "FhirResource", "FlagView", "Investigator",
           "LockView", "OmittedOutcome", "ProtocolList", "ProtocolVersionView", "Randomisation", "ReconsentList",
           "RegistrationHistory", "RegistrationVersionView", "RegistrationView", "ReportedOutcome", "ResultsView",
           "SafetyView", "SiteList", "SiteView", "SubjectView", "SusarView", "TrialList", "TrialStatusView",
           "TrialSummary"]
