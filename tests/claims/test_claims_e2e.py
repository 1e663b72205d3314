"""Claims end to end through the HTTP API, the desks and the gateways of a real node."""

from __future__ import annotations

from careledger.claims.package import AdjudicationPackage
from support.claims_node import ClaimsNode, claims_node_fixture  # noqa: F401


def test_a_claim_from_submission_to_payment_and_the_patients_eob(claims_node: ClaimsNode) -> None:
    w = claims_node
    done = w.submit()
    claim = done["receipt"]["result"]["claim"]
    assert done["receipt"]["result"]["status"] == "submitted"
    adjudicated = w.claims("insurer-officer").adjudicate(claim)
    assert adjudicated["receipt"]["code"] == 0, adjudicated
    assert adjudicated["adjudication"]["outcome"] == "approved"
    status = w.claims("patient").status(claim)
    assert status["claim"]["status"] == "adjudicated"
    paid = w.claims("insurer-officer").pay(claim)
    assert paid["receipt"]["code"] == 0
    eob = w.claims("patient").eob(claim)
    assert eob["resourceType"] == "ExplanationOfBenefit"
    package = AdjudicationPackage.from_binary(
        w.claims("patient").adjudication_document(claim, "package", purpose="PATRQT").resource)
    assert package.claim == claim
