"""The WHO TRDS data set as typed data and its whole-set rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from careledger.contracts.trials.dataset import WHO_ITEMS, DataSetProblem, TrialRegistrationDataSet, check_dataset
from support.trials import sample_dataset


def _ds(**changes: Any) -> TrialRegistrationDataSet:
    return TrialRegistrationDataSet.model_validate(sample_dataset(**changes))


def test_the_sample_data_set_is_valid_and_stored_with_sorted_countries() -> None:
    ds = _ds()
    check_dataset(ds)
    assert ds.to_json()["countries"] == ["FR", "GB"]
    assert len(WHO_ITEMS) == 24


@pytest.mark.parametrize(("changes", "message"), [
    ({"secondary_outcomes": [{"id": "P1", "measure": "m", "method": "x", "time_frame": "t"}]}, "outcome id"),
    ({"arms": [{"label": "app", "type": "experimental", "description": "d"}] * 2}, "arm"),
    ({"countries": ["GB", "GB"]}, "country"),
    ({"interventions": [{"name": "X", "type": "drug", "description": "d", "arms": ["ghost"]}]}, "not registered"),
    ({"arms": [{"label": "app", "type": "experimental", "description": "d"}],
      "interventions": [{"name": "X", "type": "drug", "description": "d", "arms": ["app"]}]}, "two arms"),
    ({"eligibility__min_age": {"value": 90, "unit": "years"}}, "minimum age"),
    ({"scientific_contact": {"name": "Office"}}, "email address or a telephone"),
    ({"conditions": [{"text": "Knee", "system": "http://hl7.org/fhir/sid/icd-10"}]}, "code needs its system"),
    ({"ethics_reviews": [{"status": "approved", "committee": "C", "contact": "c"}]}, "needs its date"),
    ({"completion__primary__date": "2025-06-30"}, "after study completion"),
    ({"completion__primary__date": "2023-01-01", "completion__study__date": "2023-02-01"}, "before the first"),
    ({"sample_size": {"target": 10, "final": 9}}, "final sample size"),
])
def test_inconsistent_data_sets_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DataSetProblem, match=message):
        check_dataset(_ds(**changes))


@pytest.mark.parametrize("changes", [
    {"first_enrolment__date": "2024-02-30"},
    {"countries": ["gb"]},
    {"acronym": "A" * 15},
    {"public_contact": {"name": "x", "email": "not an email"}},
    {"design__phase": "phase_5"},
    {"unknown_item": 1},
    {"sample_size": {"target": "12"}},
])
def test_malformed_items_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _ds(**changes)
