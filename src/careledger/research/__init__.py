"""Research data sharing, the off-ledger side (the research contract is ``careledger.contracts.research``).

Kernels (pure: their results are anchored on the ledger or re-checked by the recipient):

* :mod:`.config`, :mod:`.deid`, :mod:`.zip3`, :mod:`.fhirtypes`: HIPAA Safe Harbor de-identification
  of FHIR R4 resources, driven by a configuration in the style of Microsoft's FHIR anonymizer;
* :mod:`.kanon`: k-anonymity and distinct l-diversity by generalisation and suppression;
* :mod:`.release`, :mod:`.dataset`: a release's NDJSON and CSV files, Merkle root, signed report,
  and the recipient's verification against the anchor;
* :mod:`.aggregate`: count/sum answers with cells below 11 suppressed;
* :mod:`.patient`: the patient's log and consents (her study keys and linkage statements are
  :mod:`careledger.contracts.research.study_keys`, shared with trials).

Shells: :mod:`.custodian` (the custodian's research desk over its vault), :mod:`.envelope`
(release packages sealed to the researcher's key), :mod:`.synthetic` (a deterministic generator).
"""
