"""Line fingerprints (keyed by the encounter's salt) and the FHIR ClaimResponse / ExplanationOfBenefit out."""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal

import pytest
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit

from careledger.claims.adjudication import EncounterFacts, adjudicate
from careledger.claims.content import day_of, parse_claim
from careledger.claims.fhir_out import claim_response, explanation_of_benefit
from careledger.claims.fingerprint import (
    FingerprintMismatch,
    check_fingerprints,
    claim_fingerprints,
    line_fingerprint,
)
from careledger.core import codec
from careledger.core.errors import Code
from careledger.vault.canonical import canonical_bytes, json_of_canonical, to_json_text
from support.claims_data import HCPCS, LOCAL, PATIENT, content, coverage, example_plan, facts, line, tables

SALT = bytes(range(32))


def test_fingerprint_construction_known_answer() -> None:
    message = b"CareLedger/claim-line/v1\x00" + codec.encode([PATIENT, "clinic", day_of("2024-03-01"), LOCAL, "ZZ002"])
    expected = hmac.new(SALT, message, hashlib.sha256).hexdigest()
    assert line_fingerprint(SALT, PATIENT, "clinic", day_of("2024-03-01"), LOCAL, "ZZ002") == expected
    assert expected == "7a1690d7e91d8ec5f9030fc7a52c0127cd10769b2251f48e7efd476ed8e37b06"


def test_the_same_line_to_two_payers_has_one_fingerprint_only_for_holders_of_the_salt() -> None:
    c = content(line("ZZ002", net=10.0), line("G0438", system=HCPCS, net=50.0))
    to_first = claim_fingerprints(SALT, PATIENT, "clinic", c)
    priced_differently = content(line("ZZ002", net=99.0, modifiers=("59",)), line("G0438", system=HCPCS, net=1.0))
    assert claim_fingerprints(SALT, PATIENT, "clinic", priced_differently) == to_first
    assert claim_fingerprints(bytes(32), PATIENT, "clinic", c) != to_first       # another encounter's salt
    assert claim_fingerprints(SALT, "pt-" + "cd" * 16, "clinic", c) != to_first  # another patient
    assert to_first == sorted(to_first) and len(set(to_first)) == 2
    twice = content(line("ZZ002"), line("ZZ002", modifiers=("RT",)))
    assert len(claim_fingerprints(SALT, PATIENT, "clinic", twice)) == 1
    with pytest.raises(ValueError):
        line_fingerprint(b"short", PATIENT, "clinic", 1, LOCAL, "ZZ002")


def test_a_payer_checks_the_fingerprints_on_the_ledger() -> None:
    c = content(line("ZZ002"), line("ZZ003"))
    recorded = claim_fingerprints(SALT, PATIENT, "clinic", c)
    check_fingerprints(SALT, PATIENT, "clinic", c, list(reversed(recorded)))
    with pytest.raises(FingerprintMismatch) as exc:
        check_fingerprints(SALT, PATIENT, "clinic", c, recorded[:1])
    assert exc.value.code == Code.FINGERPRINT_MISMATCH
    with pytest.raises(FingerprintMismatch):
        check_fingerprints(SALT, PATIENT, "hospital", c, recorded)


@pytest.mark.parametrize("scenario", ["approved", "partial", "denied", "pended"])
def test_claim_response_and_eob_validate_and_carry_the_result(scenario: str) -> None:
    c = content(line("G0438", system=HCPCS, net=200.0), line("ZZ099" if scenario == "partial" else "ZZ002",
                                                                   net=1000.5, modifiers=("RT",), units=2))
    enc = {"approved": None, "partial": None, "denied": EncounterFacts("r-1", "absent"),
           "pended": EncounterFacts("r-1", "unavailable")}[scenario]
    r = adjudicate(c, coverage(), example_plan(), tables(), facts(encounter=enc))
    assert r.outcome == scenario
    cr = claim_response(r, c, patient=PATIENT, provider="clinic", created="2024-03-12")
    eob = explanation_of_benefit(r, c, patient=PATIENT, provider="clinic", created="2024-03-12",
                                 received_day=day_of("2024-03-10"))
    for resource, model in ((cr, ClaimResponse), (eob, ExplanationOfBenefit)):
        model.model_validate_json(json_of_canonical(canonical_bytes(resource)))
    assert cr["outcome"] == ("queued" if scenario == "pended" else "complete") and cr["disposition"] == scenario
    assert ("payment" in eob) == (scenario != "pended")
    text = to_json_text(eob)
    assert '"value":1000.50' in text  # the line's net, exactly as priced (not 1000.5, never a float)
    amounts = {a["category"]["coding"][0]["code"]: Decimal(a["amount"]["value"]["$decimal"])
               for a in eob["item"][0]["adjudication"] if "amount" in a and "reason" not in a}
    first = r.lines[0]
    assert amounts["submitted"] == Decimal(first.submitted) / 100 and amounts["benefit"] == Decimal(first.benefit) / 100
    assert amounts["memberliability"] == Decimal(first.patient_responsibility) / 100
    reasons = [a["reason"]["text"] for item in eob["item"] for a in item["adjudication"] if "reason" in a]
    assert sorted(reasons) == sorted(adj.code for x in r.lines for adj in x.adjustments)
    if scenario == "denied":
        assert eob["processNote"] == [{"number": 1, "text": "M127: No recorded encounter supports this service",
                                       "type": "display"}]
        assert all(a["category"]["coding"][0]["code"] == "denialreason" for item in eob["item"]
                   for a in item["adjudication"] if "reason" in a)
    assert PATIENT in text and "Carolee" not in text


def test_an_eob_reads_back_as_the_claim_it_explains() -> None:
    c = content(line("G0438", system=HCPCS, net=200.0), line("ZZ002", net=1000.0, units=2, modifiers=("RT",)))
    r = adjudicate(c, coverage(), example_plan(), tables(), facts())
    eob = explanation_of_benefit(r, c, patient=PATIENT, provider="clinic", created="2024-03-12",
                                 received_day=day_of("2024-03-10"))
    back = parse_claim(json.loads(to_json_text(eob)))
    assert [(x.sequence, x.system, x.code, x.modifiers, x.units, x.charge, x.service_day) for x in back.lines] == \
        [(x.sequence, x.system, x.code, x.modifiers, x.units, x.charge, x.service_day) for x in c.lines]
