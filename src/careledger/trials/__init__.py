"""The clinical-trials shell: the off-ledger side of the trials contract.

* :mod:`.randomisation`: the sponsor's stratified block randomisation (seeded), its commitment and
  the reveal handed to a site at each enrolment;
* :mod:`.anchor_tree`: the anchor tree kept in full, for roots and inclusion proofs at any size;
* :mod:`.fhir_export`: a registration as a FHIR R4 ``ResearchStudy`` carrying every WHO item, and a
  trial consent as a FHIR ``Consent`` (validated with fhir.resources R4B);
* :mod:`.anchor_index`: anchor trees per trial, rebuilt from committed state, for the API's proofs.

The patient's per-trial study key and the linkage statement she gives a site are the research
registry's scheme (:mod:`careledger.contracts.research.study_keys`): a trial is a study there.

The pure kernels the contract itself runs (the WHO data set, the allocation commitment, the anchor
frontier, the E2A clock, the COMPare check) are in :mod:`careledger.contracts.trials`.
"""
