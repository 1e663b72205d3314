"""``careledger bench --workload research``: the two research targets of issue 13, measured in one run.

* a de-identified, k-anonymous release of ``patients`` generated patients (about 50 resources each):
  Safe Harbor, generalisation and suppression to k = 5, the identifier and k checks, NDJSON and CSV
  and their Merkle root, then the recipient's verification (:func:`.research_kernel.bench_release`);
  target ≥ 5,000 resources/s for 10,000 patients;
* aggregate queries over ``query_patients`` patients held by ``custodians`` custodians, each query
  answered by every custodian in turn (consent check per patient, grouping, small-cell suppression,
  the canonical answer and its hash) (:func:`.research_kernel.bench_aggregate`); target p99 ≤ 2 s for
  100,000 patients and 3 custodians.

Both are the kernels the gateway runs; the gateway adds, per release, reading each consenting
patient's records from the vault (AES-GCM per record, commitment checked against the ledger) and one
or a few anchoring transactions, and per query the facts of patients whose records changed (they are
cached). Sizes are options: on a shared 2-core machine run them smaller and read the rates with the
plain-copy ratio and the load average printed beside them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from careledger.bench.research_kernel import (
    AGGREGATE_P99_TARGET_S,
    RELEASE_TARGET,
    bench_aggregate,
    bench_release,
)


def _quiet(_: str) -> None:
    return None


def bench_research(patients: int = 10_000, query_patients: int = 100_000, custodians: int = 3, rounds: int = 20,
                   encounters: int = 8, workers: int = 1, progress: Callable[[str], None] = _quiet) -> dict[str, Any]:
    """Both research benchmarks at the sizes given; one JSON-able dict with the targets and whether they hold."""
    if patients < 1 or query_patients < 1 or custodians < 1 or rounds < 1:
        raise ValueError("sizes must be positive")
    load_before = os.getloadavg()[0]
    release = bench_release(patients, encounters, workers=workers, progress=progress)
    aggregate = bench_aggregate(query_patients, custodians, rounds, progress=progress)
    return {"cores": os.cpu_count(), "load_average": round(max(load_before, os.getloadavg()[0]), 1),
            "release": release, "aggregate": aggregate,
            "targets": {"release_resources_per_s": RELEASE_TARGET, "release_patients": 10_000,
                        "aggregate_p99_s": AGGREGATE_P99_TARGET_S, "aggregate_patients": 100_000,
                        "aggregate_custodians": 3},
            "at_target_sizes": patients >= 10_000 and query_patients >= 100_000 and custodians >= 3,
            "meets_targets": bool(release["meets_target"] and aggregate["meets_target"])}


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The result as (measure, value) rows for a table."""
    r, a = result["release"], result["aggregate"]
    return [
        ("release: patients / resources in / records out", f"{r['patients']:,} / {r['resources_in']:,} / "
                                                           f"{r['records_out']:,}"),
        ("release: subjects / suppressed / k", f"{r['subjects']:,} / {r['suppressed']:,} / {r['k_achieved']}"),
        ("release: generalisation levels", ", ".join(f"{k} {v}" for k, v in r["levels"].items())),
        ("release: seconds / resources per s", f"{r['release_s']} / {r['release_resources_per_s']:,} "
                                               f"(target {RELEASE_TARGET:,})"),
        ("release: cost in plain copies per resource", f"{r['release_cost_in_plain_copies']}"),
        ("verify: seconds / records per s", f"{r['verify_s']} / {r['verify_records_per_s']:,}"),
        ("aggregate: patients / custodians / queries", f"{a['patients']:,} / {a['custodians']} / {a['queries']}"),
        ("aggregate: p50 / p99 seconds", f"{a['p50_s']} / {a['p99_s']} (target p99 ≤ {AGGREGATE_P99_TARGET_S})"),
        ("aggregate: cells / withheld", f"{a['cells']:,} / {a['suppressed_cells']:,}"),
        ("machine: cores / load average", f"{result['cores']} / {result['load_average']}"),
        ("at the issue's sizes / targets met", f"{result['at_target_sizes']} / {result['meets_targets']}"),
    ]


__all__ = ["bench_research", "rows"]
