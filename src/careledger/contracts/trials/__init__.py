"""The clinical-trials contract: registration (WHO TRDS), protocol versions, sites, consent under
per-trial pseudonyms, enrolment with concealed and verifiable randomisation, anchored visit data,
database lock, ICH E2A safety deadlines, and results checked for outcome switching.

State layout and records: :mod:`.layout`; rules shared by handlers: :mod:`.rules`; handlers:
:mod:`.handlers` (split into :mod:`.handlers_registry`, :mod:`.handlers_conduct`,
:mod:`.handlers_reporting`); read-only queries the API calls: :mod:`.queries`. The pure kernels
the handlers use: :mod:`.dataset` (the WHO Trial Registration Data Set as typed data),
:mod:`.allocation` (the randomisation commitment and its verification), :mod:`.anchors` (the
incremental anchor tree's frontier), :mod:`.safety` (ICH E2A deadlines), :mod:`.outcomes` (COMPare's
outcome-switching check). A trial is a study of the research registry: registration writes its
study record there (kind ``trial``), and subjects use the registry's study keys and pseudonyms
(:mod:`careledger.contracts.research.study_keys`). The off-ledger side (the sponsor's randomisation,
the full anchor tree for proofs, the FHIR export) is the shell :mod:`careledger.trials`.
"""

from __future__ import annotations

from careledger.contracts.trials.handlers import HANDLERS
from careledger.contracts.trials.layout import (
    AdverseEventRecord,
    ProtocolVersion,
    RegistrationVersion,
    ResultsRecord,
    SiteRecord,
    SubjectRecord,
    TrialConsent,
    TrialRecord,
    TrialStatus,
    VisitRecord,
    get_adverse_event,
    get_consent,
    get_protocol,
    get_registration,
    get_results,
    get_site,
    get_status,
    get_subject,
    get_tree,
    get_trial,
    get_visit,
    iter_protocols,
    iter_registrations,
    iter_sites,
    iter_statuses,
    iter_subjects,
)
from careledger.contracts.trials.queries import (
    anchor_leaves,
    anchor_root,
    outcome_flags,
    overdue_susars,
    registration_baseline,
    safety_overview,
    subjects_awaiting_reconsent,
)

__all__ = [
    "HANDLERS", "AdverseEventRecord", "ProtocolVersion", "RegistrationVersion", "ResultsRecord", "SiteRecord",
    "SubjectRecord", "TrialConsent", "TrialRecord", "TrialStatus", "VisitRecord", "anchor_leaves", "anchor_root",
    "get_adverse_event", "get_consent", "get_protocol", "get_registration", "get_results", "get_site", "get_status",
    "get_subject", "get_tree", "get_trial", "get_visit", "iter_protocols", "iter_registrations", "iter_sites",
    "iter_statuses", "iter_subjects", "outcome_flags", "overdue_susars", "registration_baseline", "safety_overview",
    "subjects_awaiting_reconsent",
]
