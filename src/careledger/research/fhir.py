"""The research registry in the FHIR facade: ResearchStudy, and ResearchSubject with its research Consent.

Two providers (:class:`~careledger.vault.fhir_search.ResourceProvider`) over committed state, for
``careledger.api.fhir.PROVIDERS``:

==================  =============================================  ================================  ===============
type                rows                                           id                                who sees them
==================  =============================================  ================================  ===============
ResearchStudy       every study of the registry (current version)  the study id (``study-…``)        anyone the
                                                                                                     facade admits
ResearchSubject     every consent given to one study               the consent id (``rcn-…``)        admins and
                    (``scope`` study; broad consents name no                                         researchers of
                    study), revoked ones as ``withdrawn``                                            the sponsor
==================  =============================================  ================================  ===============

A ResearchSubject names its subject only by study pseudonym (``individual.identifier``, system
``urn:careledger:study-pseudonym``): the ledger does not say who is in a study, and neither does this.
Its research Consent (scope ``research``, policy ``hipaa-research``) is contained in it
(``consent`` → ``#consent``): the facade's ``Consent`` type is the records contract's. A search
names the study (``study=ResearchStudy/study-…``), as a clinical search names the patient.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from careledger.contracts.research import (
    ResearchConsentRecord,
    StudyRecord,
    all_consents,
    get_consent_by_id,
    get_study,
    list_studies,
)
from careledger.core.errors import Code, LedgerError
from careledger.research.patient import research_consent_to_fhir, study_to_fhir
from careledger.vault.fhir_access import Access
from careledger.vault.fhir_search import Page, Query, ReferenceMatch, SearchParam, invalid

SP = "http://hl7.org/fhir/SearchParameter/"
CATEGORY_SYSTEM = "urn:careledger:research-category"
STUDY_STATUS = "http://hl7.org/fhir/research-study-status"
SUBJECT_STATUS = "http://hl7.org/fhir/research-subject-status"
STUDY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")


def _study_status(study: StudyRecord) -> str:
    return "active" if study.status == "active" else "closed-to-accrual-and-intervention"


class ResearchStudyResources:
    """FHIR ResearchStudy: the study registry, readable by every member and patient the facade admits."""

    resource_type = "ResearchStudy"
    search_params: tuple[SearchParam[StudyRecord], ...] = (
        SearchParam[StudyRecord]("status", "token", SP + "ResearchStudy-status",
                                 "active | closed-to-accrual-and-intervention",
                                 lambda s: ((STUDY_STATUS, _study_status(s)),)),
        SearchParam[StudyRecord]("category", "token", SP + "ResearchStudy-category",
                                 f"The research category ({CATEGORY_SYSTEM})",
                                 lambda s: ((CATEGORY_SYSTEM, s.category),)),
        SearchParam[StudyRecord]("sponsor", "reference", SP + "ResearchStudy-sponsor",
                                 "The sponsor organisation (Organization/<id>)",
                                 lambda s: (f"Organization/{s.sponsor}",)),
        SearchParam[StudyRecord]("date", "date", SP + "ResearchStudy-date", "When the study starts",
                                 lambda s: s.period_start_ms),
    )

    def read(self, access: Access, resource_id: str) -> dict[str, Any]:
        """Raises STUDY_UNKNOWN."""
        study = get_study(access.view, resource_id) if STUDY_ID.match(resource_id) else None
        if study is None:
            raise LedgerError(f"no ResearchStudy {resource_id[:80]}", Code.STUDY_UNKNOWN)
        return study_to_fhir(study)

    def search(self, access: Access, query: Query) -> Page:
        matched = [s for s in list_studies(access.view) if query.matches(s)]
        page = matched[query.offset:query.offset + query.count]
        return Page(len(matched), [study_to_fhir(s) for s in page])


def _subject_status(consent: ResearchConsentRecord) -> str:
    return "on-study" if consent.status == "active" else "withdrawn"


def research_subject_to_fhir(consent: ResearchConsentRecord, study: StudyRecord | None) -> dict[str, Any]:
    """A study consent as a FHIR R4 ResearchSubject, its research Consent contained."""
    contained = {**research_consent_to_fhir(consent, study), "id": "consent"}
    period: dict[str, str] = {"start": contained["dateTime"]}
    if consent.revoked_ms is not None:
        from careledger.vault.fhir_ledger import instant

        period["end"] = instant(consent.revoked_ms)
    return {
        "resourceType": "ResearchSubject", "id": consent.id, "status": _subject_status(consent),
        "period": period, "study": {"reference": f"ResearchStudy/{consent.target}"},
        "individual": {"identifier": {"system": "urn:careledger:study-pseudonym", "value": consent.subject}},
        "consent": {"reference": "#consent"}, "contained": [contained],
    }


class ResearchSubjectResources:
    """FHIR ResearchSubject: the consents given to one study, for admins and researchers of its sponsor."""

    resource_type = "ResearchSubject"
    id_pattern = re.compile(r"^rcn-[0-9a-f]{24}(-[0-9]{1,4})?$")
    search_params: tuple[SearchParam[ResearchConsentRecord], ...] = (
        SearchParam[ResearchConsentRecord]("study", "reference", SP + "ResearchSubject-study",
                                           "The study (ResearchStudy/study-…): required",
                                           lambda c: (f"ResearchStudy/{c.target}",)),
        SearchParam[ResearchConsentRecord]("status", "token", SP + "ResearchSubject-status",
                                           "on-study (consent active) | withdrawn (revoked)",
                                           lambda c: ((SUBJECT_STATUS, _subject_status(c)),)),
        SearchParam[ResearchConsentRecord]("date", "date", SP + "ResearchSubject-date",
                                           "When the consent was given (block time)", lambda c: c.granted_ms),
    )

    @staticmethod
    def _sponsor_study(access: Access, study_id: str) -> StudyRecord | None:
        """The study, if the requester is an admin or researcher of its sponsor; NOT_STUDY_SPONSOR otherwise
        (and for a study that does not exist, so the answer says nothing about it)."""
        study = get_study(access.view, study_id)
        s = access.signer
        if study is None or s.org != study.sponsor or not (s.kind == "admin" or s.has_role("researcher")):
            raise LedgerError("only an admin or researcher of the study's sponsor sees its subjects",
                              Code.NOT_STUDY_SPONSOR)
        return study

    def read(self, access: Access, resource_id: str) -> dict[str, Any]:
        """Raises RESEARCH_CONSENT_UNKNOWN (also for a broad consent: it has no study) and NOT_STUDY_SPONSOR."""
        consent = get_consent_by_id(access.view, resource_id) if self.id_pattern.match(resource_id) else None
        if consent is None or consent.scope != "study":
            raise LedgerError(f"no ResearchSubject {resource_id[:80]}", Code.RESEARCH_CONSENT_UNKNOWN)
        return research_subject_to_fhir(consent, self._sponsor_study(access, consent.target))

    def search(self, access: Access, query: Query) -> Page:
        """Raises FHIR_SEARCH_INVALID without exactly one ``study``, NOT_STUDY_SPONSOR."""
        studies = [alt for c in query.criteria if c.param.name == "study" for alt in c.alternatives]
        if len(studies) != 1 or not isinstance(studies[0], ReferenceMatch):
            raise invalid("name one study (study=ResearchStudy/study-…): searches are per study")
        study_id = studies[0].reference.removeprefix("ResearchStudy/")
        study = self._sponsor_study(access, study_id)
        matched = [c for c in all_consents(access.view)
                   if c.scope == "study" and c.target == study_id and query.matches(c)]
        matched.sort(key=lambda c: (c.granted_height, c.id))
        page: Sequence[ResearchConsentRecord] = matched[query.offset:query.offset + query.count]
        return Page(len(matched), [research_subject_to_fhir(c, study) for c in page])


__all__ = ["ResearchStudyResources", "ResearchSubjectResources", "research_subject_to_fhir"]
