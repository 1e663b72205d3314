"""The clinical-trials shell: pure kernels and the off-ledger side of the trials contract.

* :mod:`.registration`: the WHO Trial Registration Data Set (v1.3.1) as typed data;
* :mod:`.fhir_export`: a registration as a FHIR R4 ``ResearchStudy`` carrying every WHO item, and a
  trial consent as a FHIR ``Consent`` (validated with fhir.resources R4B);
* :mod:`.randomisation`: stratified block randomisation (sponsor side, seeded), its Merkle
  commitment, reveals and their verification;
* :mod:`.anchor_tree`: the incremental append-only Merkle tree (O(log n) frontier on the ledger,
  full levels off it for proofs) and the tamper check after lock;
* :mod:`.safety`: ICH E2A deadlines as pure functions of times in ms;
* :mod:`.outcomes`: COMPare's outcome-switching check;
* :mod:`.pseudonyms`: the patient's per-trial study key and the off-ledger linkage statement.

Everything here except :mod:`.fhir_export` and :mod:`.pseudonyms` is deterministic and imports only
:mod:`careledger.core`, so the contract can use it.
"""
