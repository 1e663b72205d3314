"""``careledger bench``: throughput and latency benchmarks, reported as ratios measured in one run."""

from __future__ import annotations

from typing import Annotated

import typer

from careledger.cli.common import activity, emit, fail, print_table, say


def bench(
    engine: Annotated[str, typer.Option(help="Engine to drive: solo (embedded), or cometbft (a local "
                                             "network against CometBFT's kvstore).")] = "solo",
    via: Annotated[str, typer.Option(help="solo: inproc (submit in process) or http (through the HTTP API from "
                                          "a separate load generator, beside a Hardhat peer and the HTTP "
                                          "stack's ceiling).")] = "inproc",
    txs: Annotated[int, typer.Option(help="Transactions in the peak-throughput phase (http: per target).")] = 20_000,
    connections: Annotated[int, typer.Option(help="http: concurrent keep-alive connections.")] = 64,
    lane_depth: Annotated[int, typer.Option(help="http: a signer's requests in flight at once (0: no limit, "
                                                 "so nonces may arrive out of order).")] = 0,
    signers: Annotated[int, typer.Option(help="http: signers (1-50), each sending consecutive nonces.")] = 50,
    half_seconds: Annotated[float, typer.Option(help="http: seconds of the phase paced at half the peak.")] = 5.0,
    no_hardhat: Annotated[bool, typer.Option("--no-hardhat", help="http: leave out the Hardhat peer.")] = False,
    scale: Annotated[int, typer.Option(help="http: instead, a growth run of this many transactions, reported "
                                            "per chunk (throughput, p99, memory, time to open the store).")] = 0,
    chunk: Annotated[int, typer.Option(help="http --scale: transactions per reported chunk.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 7,
    validators: Annotated[int, typer.Option(help="cometbft: validators per network.")] = 4,
    workload: Annotated[str, typer.Option(help="Workload: identity (default mix), records, supply, claims, research, "
                                               "trials, or startup (time to open a home grown to --txs "
                                               "transactions).")] = "identity",
    size: Annotated[str, typer.Option(help="trials: TRIALSxSUBJECTSxVISITS\\[/VISITS_PER_TX] anchored over HTTP.")]
    = "100x1000x10",
    serials: Annotated[int, typer.Option(help="supply: random serials in the commissioning phase.")] = 500_000,
    small: Annotated[int, typer.Option(help="supply: serials on the ledger for the first latency sample.")]
    = 1_000_000,
    large: Annotated[int, typer.Option(help="supply: serials for the second sample (10,000,000 for the "
                                             "issue's figure; takes a while).")] = 3_000_000,
    claims: Annotated[int, typer.Option(help="claims: claims sent end to end (at most --txs).")] = 1_000,
    prior: Annotated[int, typer.Option(help="claims: prior claims on the ledger (written into the store, built "
                                             "once and cached).")] = 1_000_000,
    sync: Annotated[str, typer.Option(help="solo inproc: the store's synchronous mode, full (durable across power "
                                           "loss, the default) or normal (across a crash only); both: the run in "
                                           "full plus both modes compared on the same load (sync_cost).")] = "full",
    patients: Annotated[int, typer.Option(help="research: patients released; --query-patients: patients the "
                                                "aggregate queries run over (3 custodians).")] = 10_000,
    query_patients: Annotated[int, typer.Option(help="research: see --patients.")] = 100_000,
) -> None:
    """Measure committed tx/s, p50/p99 submission-to-commit latency and the machine's Ed25519 limit."""
    if engine == "cometbft":
        _bench_cometbft(validators, txs)
        return
    if workload == "trials":
        _bench_trials(size, txs, seed, connections, lane_depth, signers, chunk)
        return
    if engine != "solo":
        fail(f"engine {engine!r} is not available in this release")
    if via == "http":
        _bench_http(txs, seed, connections, lane_depth, signers, half_seconds, not no_hardhat, scale, chunk)
        return
    if via != "inproc":
        fail(f"--via must be inproc or http, not {via!r}")
    from careledger.bench.solo import SYNC_CHOICES, bench_solo

    if sync not in SYNC_CHOICES:
        fail(f"--sync must be one of {', '.join(SYNC_CHOICES)}, not {sync!r}")
    with activity(f"bench {workload}") as progress:
        if workload == "startup":
            from careledger.bench.startup import bench_startup

            result = bench_startup(txs=txs, progress=progress)
        elif workload == "supply":
            from careledger.bench.supply import bench_supply

            result = bench_supply(commission=serials, small=small, large=large, seed=seed, progress=progress)
        elif workload == "claims":  # the kernel, claims end to end over HTTP, the solo HTTP tx/s beside them
            from careledger.bench.claims import BenchSetupError, bench_claims, format_table

            try:
                result = bench_claims(claims=min(txs, claims), prior=prior, seed=seed, progress=progress)
            except BenchSetupError as exc:
                fail(str(exc))
            emit(result, lambda: print_table(["measure", "value"], format_table(result), title="claims"))
        elif workload == "research":
            from careledger.bench.research import bench_research, rows

            try:
                result = bench_research(patients, query_patients, progress=progress)
            except ValueError as exc:
                fail(str(exc))
            emit(result, lambda: print_table(["measure", "value"], rows(result), title="research kernels"))
            return
        elif workload == "records":
            from careledger.bench.records import bench_records

            result = bench_records(progress=progress)
        else:
            result = bench_solo(txs=txs, seed=seed, progress=progress, sync=sync)
    emit(result, lambda: print_table(["measure", "value"], _rows(result), title="CareLedger solo engine"))


def _rows(result: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    """A result as (measure, value) rows; nested results (sync_cost) flattened with dotted names."""
    rows: list[tuple[str, object]] = []
    for key, value in result.items():
        if isinstance(value, dict):
            rows.extend(_rows(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", f"{value:,}" if isinstance(value, int | float) and
                         not isinstance(value, bool) else value))
    return rows


def _bench_cometbft(validators: int, txs: int) -> None:
    """A local CareLedger network against CometBFT's kvstore, built in and over the ABCI socket, under the
    same load (careledger.bench.cometbft)."""
    from careledger.bench.cometbft import bench_cometbft

    with activity("bench cometbft") as progress:
        result = bench_cometbft(validators=validators, peak_txs=min(txs, 20_000), progress=progress)

    def human() -> None:
        rows: list[list[object]] = [
            [f"{phase} {key}", *(f"{result[net][phase][key]:,}" for net in ("careledger", "kvstore", "kvstore_socket"))]
            for phase in ("peak", "paced") for key in ("tx_per_s", "p50_ms", "p99_ms", "committed", "rejected")]
        rows.append(["CareLedger peak tx/s ÷ this", "", result["ratio_peak_tx_per_s"],
                     result["ratio_peak_vs_kvstore_socket"]])
        print_table(["measure", "CareLedger", "kvstore (built in)", "kvstore (ABCI socket)"], rows,
                    title=f"CometBFT, {validators} validators, {result['cores']} cores")
        say(f"targets: {result['targets']}")

    emit(result, human)


def _bench_trials(size: str, txs: int, seed: int, connections: int, lane_depth: int, signers: int,
                  chunk: int) -> None:
    """Trial visits anchored through the HTTP API against consent.grant in the same run
    (careledger.bench.trials_http)."""
    from careledger.bench.harness import BenchSetupError, LoadShape
    from careledger.bench.trials_http import TrialsHttpBench, bench_trials_http, format_table

    try:
        cfg = TrialsHttpBench.parse_size(size, baseline_txs=txs, seed=seed, signers=signers, chunk=chunk,
                                         shape=LoadShape(connections=connections, lane_depth=lane_depth))
        with activity("bench trials") as progress:
            result = bench_trials_http(cfg, progress=progress)
    except (BenchSetupError, ValueError) as exc:
        fail(str(exc))
    emit(result, lambda: say(format_table(result)))


def _bench_http(txs: int, seed: int, connections: int, lane_depth: int, signers: int, half_seconds: float,
                hardhat: bool, scale: int, chunk: int) -> None:
    """The solo node through its HTTP API (careledger.bench.http)."""
    from careledger.bench.harness import BenchSetupError, LoadShape
    from careledger.bench.http import HttpBench, bench_http, bench_scale, format_table

    try:
        cfg = HttpBench(txs=txs, seed=seed, signers=signers, half_seconds=half_seconds,
                        shape=LoadShape(connections=connections, lane_depth=lane_depth))
        with activity("bench http") as progress:
            if scale:
                result = bench_scale(scale, chunk, cfg, progress=progress)
            else:
                result = bench_http(cfg, hardhat=hardhat, progress=progress)
    except (BenchSetupError, ValueError) as exc:
        fail(str(exc))
    emit(result, None if scale else (lambda: say(format_table(result))))
