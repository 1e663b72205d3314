"""The WHO Trial Registration Data Set (TRDS v1.3.1) as typed, structured data.

One model per item group; :class:`TrialRegistrationDataSet` is what a sponsor registers (the
``trials.register`` payload carries it) and what each registration version stores. The 24 items and
where each lives (items 1 and 2 are assigned by the ledger; item 23 arrives with the results)::

     1 primary registry and trial id      ledger: the chain's trial registry and the trial id
     2 date of registration               ledger: the registering block's time
     3 secondary identifying numbers      secondary_ids
     4 sources of monetary/material support  funding_sources
     5 primary sponsor                    primary_sponsor (+ the sponsoring member organisation)
     6 secondary sponsors                 secondary_sponsors
     7 contact for public queries         public_contact
     8 contact for scientific queries     scientific_contact
     9 public title                       public_title
    10 scientific title (+ acronym)       scientific_title, acronym
    11 countries of recruitment           countries (ISO 3166-1 alpha-2)
    12 health conditions studied          conditions
    13 interventions (incl. comparator)   arms, interventions
    14 key inclusion/exclusion criteria   eligibility (criteria, sex, ages, healthy volunteers)
    15 study type                         design (type, allocation, masking, assignment, purpose, phase)
    16 date of first enrolment            first_enrolment (anticipated | actual)
    17 sample size                        sample_size (target, final)
    18 recruitment status                 recruitment_status
    19 primary outcomes                   primary_outcomes (measure, method, time frame, analysis)
    20 key secondary outcomes             secondary_outcomes
    21 ethics review                      ethics_reviews (+ each site's approval)
    22 completion date                    completion (primary completion, study completion)
    23 summary results                    ledger: the results submission (:class:`SummaryResults`)
    24 IPD sharing statement              ipd_sharing

Contacts are business contacts (an office or a named investigator's work address), never patient
data. Dates are ISO 8601 calendar dates (``YYYY-MM-DD``, the registries' own interchange form);
arithmetic on them goes through :func:`day_number` (integer days since 1970-01-01). Each outcome
carries a short ``id`` that stays with it across registration versions and results, so a changed
outcome is told apart from one dropped and another added.

Pure: pydantic models (strict, frozen, no unknown fields) and checks; no I/O.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

WHO_TRDS_VERSION = "1.3.1"
WHO_ITEMS = (
    "primary registry and trial identifying number", "date of registration in primary registry",
    "secondary identifying numbers", "sources of monetary or material support", "primary sponsor",
    "secondary sponsors", "contact for public queries", "contact for scientific queries", "public title",
    "scientific title", "countries of recruitment", "health conditions or problems studied", "interventions",
    "key inclusion and exclusion criteria", "study type", "date of first enrolment", "sample size",
    "recruitment status", "primary outcomes", "key secondary outcomes", "ethics review", "completion date",
    "summary results", "IPD sharing statement",
)
"""The 24 items of WHO TRDS v1.3.1, in order (item n is ``WHO_ITEMS[n - 1]``)."""

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _real_date(text: str) -> str:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a calendar date") from None
    return text


def day_number(iso: str) -> int:
    """Days since 1970-01-01 of an ISO calendar date (UTC)."""
    return date.fromisoformat(iso).toordinal() - _EPOCH_ORDINAL


def iso_of_day(day: int) -> str:
    return date.fromordinal(day + _EPOCH_ORDINAL).isoformat()


def one_year_after(iso: str) -> str:
    """The same calendar date a year later (29 February gives 28 February)."""
    d = date.fromisoformat(iso)
    try:
        return d.replace(year=d.year + 1).isoformat()
    except ValueError:
        return d.replace(year=d.year + 1, day=28).isoformat()


IsoDate = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), AfterValidator(_real_date)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=600)]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()./-]{5,32}$")]
WebUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]{1,290}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
OutcomeId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
ArmLabel = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")]
CodeSystem = Annotated[str, StringConstraints(pattern=r"^(https?|urn):[^\s]{1,200}$")]
CodeValue = Annotated[str, StringConstraints(pattern=r"^[^\s]{1,64}$")]

RecruitmentStatus = Literal["pending", "recruiting", "suspended", "complete", "other"]
RECRUITMENT_STATUSES = ("pending", "recruiting", "suspended", "complete", "other")


class Model(BaseModel):
    """Strict, frozen, no unknown fields (the same rules as transaction payloads)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SecondaryId(Model):
    """Item 3: an identifier issued by another authority (another registry, the sponsor, the WHO UTN)."""

    issuer: ShortText
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Contact(Model):
    """Items 7-8: a business contact (an office or an investigator's work address); email or phone needed."""

    name: ShortText
    affiliation: ShortText | None = None
    email: Email | None = None
    phone: Phone | None = None
    address: ShortText | None = None


class Condition(Model):
    """Item 12: a condition as text, optionally coded (e.g. ICD-10, SNOMED CT)."""

    text: ShortText
    system: CodeSystem | None = None
    code: CodeValue | None = None


class Arm(Model):
    """Item 13 (with the interventions): an arm or group of the study."""

    label: ArmLabel
    type: Literal["experimental", "active_comparator", "placebo_comparator", "sham_comparator", "no_intervention",
                  "other"]
    description: Text


class Intervention(Model):
    """Item 13: an intervention, the arms that receive it, and whether it is the comparator."""

    name: ShortText
    type: Literal["drug", "device", "biological", "procedure", "radiation", "behavioral", "genetic",
                  "dietary_supplement", "combination_product", "diagnostic_test", "other"]
    description: Text
    arms: Annotated[list[ArmLabel], Field(min_length=1, max_length=16)]
    comparator: bool = False


class Age(Model):
    value: Annotated[int, Field(ge=0, le=150)]
    unit: Literal["years", "months", "weeks", "days"]

    def days(self) -> int:
        return self.value * {"years": 365, "months": 30, "weeks": 7, "days": 1}[self.unit]


class Eligibility(Model):
    """Item 14: key inclusion and exclusion criteria, including age and sex."""

    inclusion: Annotated[list[Text], Field(min_length=1, max_length=64)]
    exclusion: Annotated[list[Text], Field(max_length=64)] = []
    sex: Literal["all", "female", "male"]
    min_age: Age | None = None
    max_age: Age | None = None
    healthy_volunteers: bool = False


class StudyDesign(Model):
    """Item 15: study type, allocation, masking, assignment (intervention model), purpose and phase."""

    type: Literal["interventional", "observational"]
    allocation: Literal["randomised", "non_randomised", "not_applicable"]
    masking: Literal["none", "single", "double", "triple", "quadruple"]
    assignment: Literal["single_group", "parallel", "crossover", "factorial", "sequential", "other"]
    purpose: Literal["treatment", "prevention", "diagnostic", "supportive_care", "screening",
                     "health_services_research", "basic_science", "other"]
    phase: Literal["not_applicable", "early_phase_1", "phase_1", "phase_1_2", "phase_2", "phase_2_3", "phase_3",
                   "phase_4"]


class DatedEvent(Model):
    """Items 16 and 22: a date, anticipated or actual."""

    date: IsoDate
    type: Literal["anticipated", "actual"]


class SampleSize(Model):
    """Item 17: target sample size and, once known, the final one."""

    target: Annotated[int, Field(ge=1, le=10_000_000)]
    final: Annotated[int, Field(ge=0, le=10_000_000)] | None = None


class Outcome(Model):
    """Items 19-20: an outcome with its measure, method of measurement, time frame and analysis."""

    id: OutcomeId
    measure: ShortText
    method: Text
    time_frame: ShortText
    analysis: Text | None = None


class EthicsReview(Model):
    """Item 21: a review by an ethics committee (IRB/REC); an approval carries its date."""

    status: Literal["approved", "pending", "not_approved", "not_required"]
    committee: ShortText
    contact: ShortText
    approval_date: IsoDate | None = None
    reference: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class Completion(Model):
    """Item 22: primary completion (last data for the primary outcomes) and study completion."""

    primary: DatedEvent
    study: DatedEvent


class IpdSharing(Model):
    """Item 24: whether individual participant data will be shared, and how."""

    plan: Literal["yes", "no", "undecided"]
    description: Text | None = None


class TrialRegistrationDataSet(Model):
    """WHO TRDS v1.3.1 items 3-22 and 24 (items 1, 2 and 23 come from the ledger)."""

    secondary_ids: Annotated[list[SecondaryId], Field(max_length=16)] = []
    funding_sources: Annotated[list[ShortText], Field(min_length=1, max_length=16)]
    primary_sponsor: ShortText
    secondary_sponsors: Annotated[list[ShortText], Field(max_length=16)] = []
    public_contact: Contact
    scientific_contact: Contact
    public_title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    scientific_title: Title
    acronym: Annotated[str, StringConstraints(min_length=1, max_length=14)] | None = None
    countries: Annotated[list[CountryCode], Field(min_length=1, max_length=250)]
    conditions: Annotated[list[Condition], Field(min_length=1, max_length=32)]
    arms: Annotated[list[Arm], Field(min_length=1, max_length=16)]
    interventions: Annotated[list[Intervention], Field(min_length=1, max_length=32)]
    eligibility: Eligibility
    design: StudyDesign
    first_enrolment: DatedEvent
    sample_size: SampleSize
    recruitment_status: RecruitmentStatus
    primary_outcomes: Annotated[list[Outcome], Field(min_length=1, max_length=16)]
    secondary_outcomes: Annotated[list[Outcome], Field(max_length=64)] = []
    ethics_reviews: Annotated[list[EthicsReview], Field(min_length=1, max_length=32)]
    completion: Completion
    ipd_sharing: IpdSharing

    def to_json(self) -> dict[str, Any]:
        """The stored form: the model's JSON with countries sorted (their order means nothing)."""
        doc = self.model_dump(mode="json")
        doc["countries"] = sorted(doc["countries"])
        return doc

    def outcomes(self) -> list[tuple[str, Outcome]]:
        """Every registered outcome with its role, primaries first, in registered order."""
        return [("primary", o) for o in self.primary_outcomes] + [("secondary", o) for o in self.secondary_outcomes]


class SummaryResults(Model):
    """Item 23 (apart from the outcome measures, which the results list against registered outcomes)."""

    brief_summary: Text
    baseline_characteristics: Text
    participant_flow: Text
    adverse_events: Text
    results_url: WebUrl | None = None
    protocol_url: WebUrl | None = None
    first_publication_date: IsoDate | None = None


class DataSetProblem(ValueError):
    """The data set is well-formed item by item but inconsistent as a whole."""


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise DataSetProblem(f"{what} {v!r} appears twice")
        seen.add(v)


_SPACE = re.compile(r"\s+")


def check_dataset(ds: TrialRegistrationDataSet) -> None:
    """The whole-data-set rules the item models cannot state on their own.

    Raises :class:`DataSetProblem` when: outcome ids repeat (across primary and secondary); arm
    labels, intervention names or countries repeat; an intervention names an arm that is not
    registered; a randomised design has fewer than two arms; the minimum age exceeds the maximum;
    a contact has neither email nor phone; a condition has a code system without a code or the
    reverse; an approved ethics review has no approval date; primary completion falls after study
    completion or before the first enrolment; the final sample size is given while recruitment
    is still pending or open.
    """
    _unique([o.id for _, o in ds.outcomes()], "outcome id")
    _unique([a.label for a in ds.arms], "arm")
    _unique([i.name for i in ds.interventions], "intervention")
    _unique(ds.countries, "country")
    labels = {a.label for a in ds.arms}
    for i in ds.interventions:
        for arm in i.arms:
            if arm not in labels:
                raise DataSetProblem(f"intervention {i.name!r} names arm {arm!r}, which is not registered")
    if ds.design.allocation == "randomised" and len(ds.arms) < 2:
        raise DataSetProblem("a randomised design needs at least two arms")
    e = ds.eligibility
    if e.min_age is not None and e.max_age is not None and e.min_age.days() > e.max_age.days():
        raise DataSetProblem("the minimum age exceeds the maximum age")
    for which, c in (("public", ds.public_contact), ("scientific", ds.scientific_contact)):
        if c.email is None and c.phone is None:
            raise DataSetProblem(f"the {which} contact needs an email address or a telephone number")
    for cond in ds.conditions:
        if (cond.system is None) != (cond.code is None):
            raise DataSetProblem(f"condition {cond.text!r}: a code needs its system and a system its code")
    for r in ds.ethics_reviews:
        if r.status == "approved" and r.approval_date is None:
            raise DataSetProblem(f"the approval by {r.committee!r} needs its date")
    if day_number(ds.completion.primary.date) > day_number(ds.completion.study.date):
        raise DataSetProblem("primary completion falls after study completion")
    if day_number(ds.completion.primary.date) < day_number(ds.first_enrolment.date):
        raise DataSetProblem("primary completion falls before the first enrolment")
    if ds.sample_size.final is not None and ds.recruitment_status in ("pending", "recruiting"):
        raise DataSetProblem("a final sample size is known only once recruitment has ended")


def normalise_text(text: str) -> str:
    """How outcome texts are compared: whitespace collapsed, case folded."""
    return _SPACE.sub(" ", text).strip().casefold()


__all__ = ["RECRUITMENT_STATUSES", "WHO_ITEMS", "WHO_TRDS_VERSION", "Age", "Arm", "Completion", "Condition",
           "Contact", "DataSetProblem", "DatedEvent", "Eligibility", "EthicsReview", "Intervention", "IpdSharing",
           "Outcome", "SampleSize", "SecondaryId", "StudyDesign", "SummaryResults", "TrialRegistrationDataSet",
           "check_dataset", "day_number", "iso_of_day", "normalise_text", "one_year_after"]
