"""Rules every trials handler shares: payload types, who the sponsor and site staff are, consent coverage.

* The **sponsor** acts through an admin of the sponsoring organisation or a member of it holding
  the ``trial_coordinator`` role.
* **Site staff** are the site's investigators (member keys named on the site record), or an admin
  of the site organisation; for data (visits, adverse events) also a ``data_steward`` member of it
  (the site vault's gateway key, which anchors what the vault stores).
* A subject's consent **covers** the trial as it stands when it is active and was given to the
  protocol version that last required (re-)consent, or a later one.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from careledger.contracts.base import Signer, TxContext
from careledger.contracts.trials.layout import Reader, SiteRecord, TrialConsent, TrialStatus, get_site, get_status
from careledger.core.errors import Code, TxFailed

TrialId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")]
"""A trial id is a valid study id of the research registry (the ledger mints ``trl-`` + 24 hex digits)."""
SubjectId = Annotated[str, StringConstraints(pattern=r"^sp-[0-9a-f]{32}$")]
VisitId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
StratumName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:|-]{0,63}$")]
EventId = Annotated[str, StringConstraints(pattern=r"^ae-[0-9a-f]{24}(-[0-9]{1,4})?$")]
LongReason = Annotated[str, StringConstraints(min_length=1, max_length=1000)]

INVESTIGATOR_ROLES = ("principal_investigator", "sub_investigator", "study_coordinator")
INVESTIGATOR_MEMBER_ROLES = ("physician", "nurse", "trial_coordinator", "researcher")
"""Member roles that may serve as a site's investigator or study coordinator."""


def require_status(state: Reader, trial: str) -> TrialStatus:
    """The trial's status record; raises TRIAL_UNKNOWN when no such trial is registered."""
    status = get_status(state, trial)
    if status is None:
        raise TxFailed(f"no registered trial {trial!r}", Code.TRIAL_UNKNOWN)
    return status


def is_sponsor_signer(signer: Signer, sponsor: str) -> bool:
    if not signer.active or signer.org != sponsor:
        return False
    return signer.kind == "admin" or (signer.kind == "member" and signer.has_role("trial_coordinator"))


def require_sponsor(ctx: TxContext, status: TrialStatus) -> None:
    """Raises TRIAL_NOT_SPONSOR unless the signer acts for the trial's sponsor."""
    if not is_sponsor_signer(ctx.signer, status.sponsor):
        raise TxFailed(f"only an admin or trial coordinator of {status.sponsor!r} acts for this trial's sponsor",
                       Code.TRIAL_NOT_SPONSOR)


def require_unlocked(status: TrialStatus) -> None:
    if status.lock is not None:
        raise TxFailed(f"trial {status.trial} is locked (database lock at height {status.lock.height})",
                       Code.TRIAL_LOCKED)


def require_site(state: Reader, trial: str, org: str) -> SiteRecord:
    site = get_site(state, trial, org)
    if site is None:
        raise TxFailed(f"{org!r} is not a site of trial {trial}", Code.TRIAL_SITE_UNKNOWN)
    return site


def is_site_staff(signer: Signer, site: SiteRecord, *, stewards: bool) -> bool:
    if not signer.active or signer.org != site.org:
        return False
    if signer.kind == "admin" or site.is_investigator(signer.key):
        return True
    return stewards and signer.kind == "member" and signer.has_role("data_steward")


def require_site_staff(ctx: TxContext, site: SiteRecord, *, stewards: bool) -> None:
    """Raises TRIAL_NOT_SITE_STAFF unless the signer is an investigator or admin of the site (or, with
    ``stewards``, its data steward)."""
    if not is_site_staff(ctx.signer, site, stewards=stewards):
        raise TxFailed(f"only the investigators of site {site.org!r} (or its admin"
                       f"{' or data steward' if stewards else ''}) may do this", Code.TRIAL_NOT_SITE_STAFF)


def consent_covers(status: TrialStatus, consent: TrialConsent) -> bool:
    """Does the consent cover the trial's current protocol (active, and no re-consent due since)?"""
    return consent.status == "active" and consent.version >= status.reconsent_version


def require_consent_covers(status: TrialStatus, consent: TrialConsent | None, *, for_visit: bool) -> TrialConsent:
    """Raises TRIAL_CONSENT_REQUIRED (none), TRIAL_CONSENT_WITHDRAWN, or for a stale version
    TRIAL_RECONSENT_REQUIRED (a visit) / TRIAL_CONSENT_STALE (an enrolment)."""
    if consent is None:
        raise TxFailed("the subject has not consented to this trial", Code.TRIAL_CONSENT_REQUIRED)
    if consent.status != "active":
        raise TxFailed("the subject withdrew consent", Code.TRIAL_CONSENT_WITHDRAWN)
    if consent.version < status.reconsent_version:
        if for_visit:
            raise TxFailed(f"protocol version {status.reconsent_version} requires re-consent; the subject consented "
                           f"to version {consent.version}", Code.TRIAL_RECONSENT_REQUIRED)
        raise TxFailed(f"the subject consented to protocol version {consent.version}; version "
                       f"{status.reconsent_version} or later is required", Code.TRIAL_CONSENT_STALE)
    return consent
