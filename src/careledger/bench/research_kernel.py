"""Research kernels under load: a de-identified, k-anonymous release, and aggregate queries across custodians.

Two functions the benchmark command calls (each returns one JSON-able dict):

* :func:`bench_release`: generated patients (about 50 resources each, :mod:`careledger.research.synthetic`)
  de-identified under Safe Harbor, generalised to k = 5, checked, written as NDJSON and CSV with their
  Merkle root (:func:`careledger.research.release.build_release`), then verified as the recipient
  would (:func:`careledger.research.release.verify_release` against an anchor built from the report).
  Reports resources per second for each, and, measured in the same run, the cost of a plain recursive
  copy of the same resources (the machine's floor for touching every element in Python), so the rate
  can be read as a ratio on a loaded or a different machine.
* :func:`bench_aggregate`: per-patient facts of ``patients`` generated patients spread over
  ``custodians``; each query is answered by every custodian in turn (consent check per patient,
  grouping, small-cell suppression, canonical answer and its hash): p50 / p99 latency of a whole
  query across all custodians.

Targets (issue 13): release ≥ 5,000 resources/s for 10,000 patients; aggregate p99 ≤ 2 s over 100,000
patients and 3 custodians.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from careledger.contracts.research import (
    Anonymity,
    ReleaseRecord,
    RequestedData,
    ResearchConsentRecord,
    StudyRecord,
    consent_covers,
)
from careledger.research.aggregate import PatientFacts, answer_hash, answer_query, extract_facts
from careledger.research.config import vendored_config
from careledger.research.release import PatientData, ReleaseSpec, build_release, verify_release
from careledger.research.synthetic import AS_OF_DAY, generate_patient

RELEASE_TARGET = 5_000
AGGREGATE_P99_TARGET_S = 2.0
TYPES = ("Condition", "Encounter", "Immunization", "MedicationRequest", "Observation", "Patient", "Procedure")
_STUDY = StudyRecord(
    id="study-" + "b" * 24, kind="data", version=1, status="active", sponsor="research", title="bench",
    category="bench", ethics_ref="IRB-BENCH", purpose="HRESCH", period_start_ms=0, period_end_ms=None,
    request=RequestedData(TYPES), anonymity=Anonymity(), consent_version=1, registered_by="00" * 32,
    registered_height=1, registered_ms=0, updated_height=1, updated_ms=0)


def _quiet(_: str) -> None:
    return None


def _copy(v: Any) -> Any:
    if type(v) is dict:
        return {k: _copy(x) for k, x in v.items()}
    if type(v) is list:
        return [_copy(x) for x in v]
    return v


def bench_release(patients: int = 10_000, encounters: int = 8, seed: str = "bench", workers: int = 1,
                  progress: Callable[[str], None] = _quiet) -> dict[str, Any]:
    """De-identify and release ``patients`` generated patients with k-anonymity; time it and its check.

    With ``workers`` > 1 the per-patient stage (Safe Harbor and the identifier checks) runs in that
    many forked processes; the release is byte for byte the same.
    """
    progress(f"generating {patients} patients")
    t = time.perf_counter()
    data = [PatientData(f"sp-{i:032x}", f"rcn-{i:024x}", tuple(generate_patient(seed, i, encounters)))
            for i in range(patients)]
    generated_s = time.perf_counter() - t
    resources_in = sum(len(p.resources) for p in data)
    spec = ReleaseSpec(_STUDY.id, 1, "hospital", "ab" * 32, _STUDY.request, _STUDY.anonymity, AS_OF_DAY)
    config = vendored_config()
    build_release(data[:20], spec, config, b"k" * 32)  # warm the plan caches and the FHIR type table
    progress(f"releasing {resources_in} resources with {workers} worker(s)")
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) if workers > 1 else None
    try:
        t = time.perf_counter()
        built = build_release(data, spec, config, b"k" * 32, mapper=pool.map if pool else None)
        release_s = time.perf_counter() - t
    finally:
        if pool is not None:
            pool.shutdown()
    r = built.report
    anchor = ReleaseRecord(
        id="rel-" + "c" * 24, study=r.study, study_version=r.study_version, custodian=r.custodian,
        recipient=r.recipient, dataset_root=r.dataset_root, records=r.records, subjects=r.subjects,
        subjects_anchored=r.subjects, snapshot_root=r.snapshot_root, resource_types=r.resource_types,
        quasi_identifiers=r.quasi_identifiers, config_hash=r.config_hash, rule_version=r.rule_version,
        zip3_list=r.zip3_list, zip3_vintage=r.zip3_vintage, k_required=r.k_required, k_achieved=r.k_achieved,
        l_required=r.l_required, l_achieved=r.l_achieved, suppressed=r.suppressed, as_of_day=r.as_of_day,
        status="complete", height=1, time_ms=0, completed_height=1)
    progress("verifying as the recipient")
    t = time.perf_counter()
    verify_release(built.files, r, anchor)
    verify_s = time.perf_counter() - t
    sample = [res for p in data[: max(1, min(patients, 400))] for res in p.resources]
    t = time.perf_counter()
    for res in sample:
        _copy(res)
    copy_us = (time.perf_counter() - t) / len(sample) * 1e6
    rate = resources_in / release_s
    return {
        "patients": patients, "workers": workers, "resources_in": resources_in, "records_out": r.records,
        "subjects": r.subjects, "suppressed": r.suppressed, "k_achieved": r.k_achieved,
        "levels": dict(zip(r.quasi_identifiers, r.levels, strict=True)),
        "generate_s": round(generated_s, 2), "release_s": round(release_s, 2),
        "release_resources_per_s": round(rate), "verify_s": round(verify_s, 2),
        "verify_records_per_s": round(r.records / verify_s),
        "plain_copy_us_per_resource": round(copy_us, 1),
        "release_us_per_resource": round(1e6 / rate, 1),
        "release_cost_in_plain_copies": round((1e6 / rate) / copy_us, 1),
        "target_resources_per_s": RELEASE_TARGET, "meets_target": rate >= RELEASE_TARGET,
        "bytes_out": sum(len(b) for b in built.files.values()),
    }


QUERIES: tuple[dict[str, Any], ...] = (
    {"group_by": ["sex"], "measure": "count", "sum_of": None, "condition_codes": []},
    {"group_by": ["birth_decade", "zip3"], "measure": "count", "sum_of": None, "condition_codes": []},
    {"group_by": ["sex", "condition"], "measure": "count", "sum_of": None,
     "condition_codes": ["http://snomed.info/sct|44054006", "http://snomed.info/sct|38341003"]},
    {"group_by": ["sex"], "measure": "sum", "sum_of": "observation:http://loinc.org|2339-0", "condition_codes": []},
    {"group_by": ["zip3"], "measure": "sum", "sum_of": "resources:Encounter", "condition_codes": []},
)
_ALL: dict[str, Any] = {"birth_year_max": None, "birth_year_min": None, "conditions_any": [], "sex": []}


def bench_aggregate(patients: int = 100_000, custodians: int = 3, rounds: int = 20, encounters: int = 1,
                    seed: str = "bench-agg", progress: Callable[[str], None] = _quiet) -> dict[str, Any]:
    """p50/p99 of aggregate queries answered by every custodian over ``patients`` patients in all."""
    progress(f"extracting facts of {patients} patients")
    config = vendored_config()
    t = time.perf_counter()
    held: list[list[tuple[PatientFacts, ResearchConsentRecord]]] = [[] for _ in range(custodians)]
    consent = ResearchConsentRecord("rcn-" + "0" * 24, "sp-" + "0" * 32, "study", _STUDY.id, 1, (), "active", 1, 0)
    for i in range(patients):
        facts = extract_facts(f"pt-{i:032x}", generate_patient(seed, i, encounters), config, AS_OF_DAY)
        assert facts is not None
        mine = consent if i % 10 else replace(consent, status="revoked")  # one in ten has revoked
        held[i % custodians].append((facts, mine))
    setup_s = time.perf_counter() - t
    latencies: list[float] = []
    cells = suppressed = 0
    for n in range(rounds):
        query = {**QUERIES[n % len(QUERIES)], "cohort": _ALL}
        t = time.perf_counter()
        for c, rows in enumerate(held):
            answer = answer_query(query, f"rq-{n:024x}", f"custodian-{c}",
                                  (f for f, cons in rows if consent_covers(cons, _STUDY)))
            answer_hash(answer)
            cells += len(answer["cells"])
            suppressed += answer["suppressed_cells"]
        latencies.append(time.perf_counter() - t)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"patients": patients, "custodians": custodians, "queries": rounds, "setup_s": round(setup_s, 1),
            "p50_s": round(statistics.median(latencies), 6), "p99_s": round(p99, 6),
            "cells": cells, "suppressed_cells": suppressed,
            "target_p99_s": AGGREGATE_P99_TARGET_S, "meets_target": p99 <= AGGREGATE_P99_TARGET_S}
