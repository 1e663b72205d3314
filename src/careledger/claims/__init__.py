"""The off-ledger side of insurance claims: pure kernels the provider's, insurer's and any verifier's
nodes share, and the desk and queries a node runs beside its records gateway.

* :mod:`.content`      a claim's clinical and financial content, its FHIR R4 import, bytes and commitment;
* :mod:`.coverage`     FHIR R4 Coverage → pseudonymous coverage terms, payer order, plan benefit terms;
* :mod:`.edits`        NCCI procedure-to-procedure and MUE edit tables (CMS loaders, synthetic data);
* :mod:`.adjudication` the adjudication function, its canonical result, commitments and re-checking;
* :mod:`.fingerprint`  line fingerprints keyed by the encounter's salt (duplicates across insurers);
* :mod:`.fhir_out`     ClaimResponse and ExplanationOfBenefit (CARIN Blue Button shape);
* :mod:`.codes`        the X12 group codes, CARC and RARC used, outcomes and fraud flags;
* :mod:`.package`      the documents behind a claim's commitments: record ids, the adjudication package, re-runs;
* :mod:`.requests`     the signed requests of the claims desk and the claim queries;
* :mod:`.desk`         a node's claims desk: prepare and commit claims and coverages, the insurer's intake;
* :mod:`.queries`      claim status, lists, flag feeds, coverages and eligibility for signed requests.

The on-ledger rules are the claims contract, :mod:`careledger.contracts.claims`.
"""
