"""Signature checks on a second core: batches go to worker processes, verdicts come back in order.

CPython threads share one interpreter lock, and libsodium's verify (about 55 µs here) is too short
for a thread to profit from releasing it: the verifying thread then queues for the lock while the
engine runs. So under load the node sends signatures in batches to worker *processes*
(:mod:`careledger.node.sigworker`) and admits the transactions in submission order as the verdicts
return. One signer's transactions therefore reach the mempool in the order they were submitted.

    submit ─► collector thread ─► batch ─► worker process(es) ─► completer thread ─► admit
              (drains the queue)            (verify, in order)     (in batch order)
"""

from __future__ import annotations

import itertools
import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from careledger.node.sigworker import U32, encode_request, read_exact

log = logging.getLogger("careledger.sigcheck")

Item = tuple[bytes, bytes, bytes]  # public key, signature, signed body bytes


class _Worker:
    """One ``careledger.node.sigworker`` child process and its pipes."""

    def __init__(self, suite_name: str, chain_id: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "careledger.node.sigworker", suite_name, chain_id],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, items: list[Item]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode_request(items))
        self.proc.stdin.flush()

    def receive(self, count: int) -> bytes | None:
        """The verdicts of the oldest unanswered batch, or None if the worker died."""
        assert self.proc.stdout is not None
        head = read_exact(self.proc.stdout, 4)
        data = read_exact(self.proc.stdout, U32.unpack(head)[0]) if head else None
        return data if data is not None and len(data) == count else None

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.proc.stdout:
            self.proc.stdout.close()


class SignatureChecker:
    """Verifies transaction signatures in worker processes; ``on_verdicts`` runs in submission order."""

    def __init__(self, suite_name: str, chain_id: str, on_verdicts: Callable[[list[tuple[Any, bool]]], None],
                 workers: int = 1, batch_max: int = 512, linger_ms: float = 2.0) -> None:
        self._on_verdicts = on_verdicts
        self._linger = linger_ms / 1000
        self._batch_max = batch_max
        self._workers = [_Worker(suite_name, chain_id) for _ in range(workers)]
        self._incoming: queue.SimpleQueue[tuple[Item, Any] | None] = queue.SimpleQueue()
        self._inflight: queue.Queue[tuple[_Worker, list[Any]] | None] = queue.Queue(maxsize=8)
        self._collector = threading.Thread(target=self._collect, name="sig-collector", daemon=True)
        self._completer = threading.Thread(target=self._complete, name="sig-completer", daemon=True)
        self._collector.start()
        self._completer.start()

    def submit(self, item: Item, token: Any) -> None:
        """Queue ``item``; ``on_verdicts([(token, ok), ...])`` is called later, in submission order."""
        self._incoming.put((item, token))

    def close(self) -> None:
        self._incoming.put(None)
        self._collector.join(timeout=10)
        self._completer.join(timeout=10)
        for worker in self._workers:
            worker.close()

    def _collect(self) -> None:
        workers = itertools.cycle(self._workers)
        while True:
            first = self._incoming.get()
            if first is None:
                break
            items, tokens = [first[0]], [first[1]]
            stop = False
            # Let a batch gather without being woken by every arrival (each wake-up is a context
            # switch), then take what came.
            time.sleep(self._linger)
            while len(items) < self._batch_max:
                try:
                    nxt = self._incoming.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt[0])
                tokens.append(nxt[1])
            worker = next(workers)
            try:
                worker.send(items)
                self._inflight.put((worker, tokens))
            except OSError:
                log.exception("signature worker is gone; failing the batch closed")
                self._settle(tokens, b"\x00" * len(tokens))
            if stop:
                break
        self._inflight.put(None)

    def _complete(self) -> None:
        while True:
            entry = self._inflight.get()
            if entry is None:
                return
            worker, tokens = entry
            verdicts = worker.receive(len(tokens))
            if verdicts is None:
                log.error("signature worker died; failing the batch closed")
                verdicts = b"\x00" * len(tokens)
            self._settle(tokens, verdicts)

    def _settle(self, tokens: list[Any], verdicts: bytes) -> None:
        try:
            self._on_verdicts([(token, ok == 1) for token, ok in zip(tokens, verdicts, strict=True)])
        except Exception:
            log.exception("admission after the signature check failed")


class SignaturePipe:
    """Synchronous, pipelined signature checks for bulk work such as ``careledger verify``.

    ``send(items)`` hands a batch to the next worker and returns a ticket; ``verdicts(ticket)``
    returns its verdicts. Tickets must be redeemed in the order they were issued.
    """

    def __init__(self, suite_name: str, chain_id: str, workers: int = 2) -> None:
        self._workers = [_Worker(suite_name, chain_id) for _ in range(workers)]
        self._next = itertools.cycle(range(workers))
        self._issued: list[tuple[int, int]] = []

    def send(self, items: list[Item]) -> int:
        w = next(self._next)
        self._workers[w].send(items)
        self._issued.append((w, len(items)))
        return len(self._issued) - 1

    def verdicts(self, ticket: int) -> bytes:
        w, count = self._issued[ticket]
        data = self._workers[w].receive(count)
        if data is None:
            raise RuntimeError("signature worker died")
        return data

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
