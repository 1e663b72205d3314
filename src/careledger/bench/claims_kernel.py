"""``careledger bench --claims`` (kernel part): the adjudication function alone, in process.

One run, on one core, of a seeded workload built before the clock starts:

* ``claims`` professional claims of 1-6 lines over the example plan's codes (made-up local codes,
  HCPCS Level II, SNOMED CT and CVX as Synthea emits them), about 10 % of lines with modifiers, some
  with 2-3 units, charges from 20.00 to 2,000.00, services over 30 days, spread over ``coverages``
  coverages whose accumulators carry from one claim to the next (as an insurer adjudicates them);
* facts: 90 % of encounters verified, 5 % absent (phantom), 2 % unreadable (pended); 10 % of claims
  on a secondary coverage with the primary's payments; up to three paid lines of earlier claims;
* measured: :func:`careledger.claims.adjudication.adjudicate` alone (claims/s, lines/s, p50/p99 per
  claim), then the insurer node's whole in-process step — adjudicate, encode the result, compute the
  input and result commitments; every result is checked to balance (outside the timing);
* beside it, in the same run: single-core Ed25519 verifications per second (libsodium), the
  machine's own yardstick, and the CPU time the process used (``*_per_cpu_s``): on a shared,
  loaded machine wall-clock rates fall while the CPU-time rates hold.

The issue's target: the adjudication function alone ≥ 5,000 claims/s in process.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from careledger.claims.adjudication import (
    Accumulators,
    AdjudicationResult,
    EncounterFacts,
    LedgerFacts,
    PriorLine,
    PriorPayer,
    adjudicate,
    input_commitment,
)
from careledger.claims.content import ClaimContent, ClaimLine, day_of
from careledger.claims.coverage import CoverageTerms, PlanRules, load_plan
from careledger.claims.edits import DATA_DIR, EditTables, synthetic_tables

START_DAY = day_of("2025-03-01")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def workload(plan: PlanRules, claims: int, coverages: int, seed: int) -> tuple[
        list[CoverageTerms], list[tuple[ClaimContent, int, LedgerFacts]]]:
    """Seeded claims with their coverage index and facts (accumulators are filled in as the run goes)."""
    rng = random.Random(seed)
    codes = sorted(plan.code_categories)
    terms = [CoverageTerms(f"cov-{i:06d}", plan.insurer, f"pt-{i:032x}", plan.plan, START_DAY - 365, None,
                           2 if i % 10 == 0 else 1, "active") for i in range(coverages)]
    out = []
    for n in range(claims):
        cov = rng.randrange(coverages)
        day = START_DAY + rng.randrange(30)
        lines = []
        for seq in range(1, rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6)) + 1):
            system, code = rng.choice(codes)
            modifiers = (rng.choice(("59", "RT", "LT", "25", "GA")),) if rng.random() < 0.1 else ()
            units = rng.choice((1, 1, 1, 1, 1, 1, 2, 3))
            lines.append(ClaimLine(seq, day, day, system, code, modifiers, units, rng.randrange(2_000, 200_000)))
        content = ClaimContent("professional", "USD", day, day, day, (), tuple(lines))
        roll = rng.random()
        status = "absent" if roll < 0.05 else "unavailable" if roll < 0.07 else "verified"
        encounter = EncounterFacts(f"r-{n:032x}", status, f"enc-{n}", day, day)  # type: ignore[arg-type]
        prior_lines = tuple(PriorLine(f"clm-{n:024x}", day - rng.randrange(2), *rng.choice(codes), (), 1)
                            for _ in range(rng.randrange(4)))
        prior_payer = None
        if terms[cov].order > 1:
            prior_payer = PriorPayer(f"clm-p{n:023x}", "primary",
                                     tuple((x.sequence, rng.randrange(0, (x.charge or 0) + 1)) for x in lines))
        facts = LedgerFacts(f"clm-{n:024x}", "clinic", day + 5, encounter, Accumulators(terms[cov].coverage),
                            prior_lines, prior_payer)
        out.append((content, cov, facts))
    return terms, out


def _run(plan: PlanRules, tables: EditTables, terms: list[CoverageTerms],
         claims: list[tuple[ClaimContent, int, LedgerFacts]], commit: bool) -> tuple[
        float, float, list[float], list[AdjudicationResult]]:
    accumulators = [Accumulators(t.coverage) for t in terms]
    timings: list[float] = []
    results: list[AdjudicationResult] = []
    salt = bytes(range(32))
    clock = time.perf_counter
    cpu = time.process_time()
    start = clock()
    for content, cov, facts in claims:
        t0 = clock()
        f = LedgerFacts(facts.claim, facts.provider, facts.received_day, facts.encounter, accumulators[cov],
                        facts.prior_lines, facts.prior_payer)
        result = adjudicate(content, terms[cov], plan, tables, f)
        if commit:
            result.commitment(salt)
            input_commitment(salt, content, terms[cov], plan, tables, f)
        accumulators[cov] = result.accumulators
        timings.append(clock() - t0)
        results.append(result)
    return clock() - start, time.process_time() - cpu, timings, results


def bench_claims_kernel(claims: int = 20_000, coverages: int = 1_000, seed: int = 7,
                        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the kernel benchmark and return its figures (see the module docstring)."""
    from careledger.bench.solo import verify_limit

    say = progress or (lambda _msg: None)
    plan = load_plan(DATA_DIR / "example-plan.json")
    tables = synthetic_tables()
    say(f"building {claims:,} claims over {coverages:,} coverages")
    terms, work = workload(plan, claims, coverages, seed)
    lines = sum(len(c.lines) for c, _, _ in work)
    _run(plan, tables, terms, work[: min(500, claims)], False)  # warm-up
    say("adjudicating")
    seconds, cpu_seconds, timings, results = _run(plan, tables, terms, work, False)
    say("adjudicating with canonical results and commitments")
    seconds_commit, cpu_commit, timings_commit, _ = _run(plan, tables, terms, work, True)
    if not all(r.balances() for r in results):
        raise AssertionError("an adjudication result does not balance")
    say("Ed25519 verifications on one core")
    limit = verify_limit(seconds=0.5, threads=1)
    outcomes = Counter(r.outcome for r in results)
    per_s = claims / seconds
    return {
        "claims": claims, "lines": lines,
        "adjudications_per_s": round(per_s, 1),
        "adjudications_per_cpu_s": round(claims / cpu_seconds, 1),
        "lines_per_s": round(lines / seconds, 1),
        "p50_us": round(_pct(timings, 0.50) * 1e6, 1),
        "p99_us": round(_pct(timings, 0.99) * 1e6, 1),
        "with_commitments_per_s": round(claims / seconds_commit, 1),
        "with_commitments_per_cpu_s": round(claims / cpu_commit, 1),
        "with_commitments_p99_us": round(_pct(timings_commit, 0.99) * 1e6, 1),
        "ed25519_verify_per_s_1core": round(limit, 1),
        "adjudications_per_verify": round(per_s / limit, 3),
        "target_per_s": 5_000, "meets_target": per_s >= 5_000,
        "outcomes": dict(sorted(outcomes.items())),
        "all_balanced": True,
    }
