"""k-anonymity and distinct l-diversity by full-domain generalisation and suppression (pure, integers only).

Definitions (Sweeney 2002; Machanavajjhala et al. 2006):

* an *equivalence class* is the set of released patients sharing one combination of quasi-identifier
  values; the release is **k-anonymous** when every class has at least k patients (its ``k`` is the
  size of its smallest class);
* it is **distinct l-diverse** on a sensitive attribute when every class holds at least l distinct
  values of that attribute (its ``l`` is the smallest such count).

Quasi-identifiers and their generalisation hierarchies (level 0 is the Safe Harbor value)::

    birth_year  1957 -> 1955-1959 -> 1950-1959 -> 1940-1959 -> *     ("90+" and "unknown" stay until *)
    sex         female -> *
    zip3        980 -> 98* -> 9** -> *                                ("000" and "unknown" stay until *)

:func:`anonymise` searches the lattice of level vectors for the least generalisation (smallest
normalised level sum; then fewest suppressed; then the smallest vector) at which suppressing the
classes that are too small (or not l-diverse) removes no more than the allowed share of patients.
It is not an optimiser (ARX is): with at most three quasi-identifiers and fixed hierarchies there are
40 candidate vectors, searched in order of loss until one fits.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from careledger.core.errors import Code, LedgerError

HEIGHTS = {"birth_year": 4, "sex": 1, "zip3": 3}
TOP = "*"
UNKNOWN = "unknown"
NINETY_PLUS = "90+"
_BAND_WIDTHS = (1, 5, 10, 20)
_LOSS_SCALE = 12  # a multiple of every height, so normalised losses stay integers


class AnonymityNotMet(LedgerError):
    """No generalisation meets k (or l) within the suppression budget; ``report`` says how close it came."""

    default_code = Code.DEID_K_NOT_MET

    def __init__(self, message: str, report: dict[str, object], code: Code | None = None) -> None:
        super().__init__(message, code)
        self.report = report


def generalise(qi: str, value: str, level: int) -> str:
    """The value of quasi-identifier ``qi`` at generalisation ``level`` (see the module docstring)."""
    if level >= HEIGHTS[qi]:
        return TOP
    if level == 0:
        return value
    if qi == "birth_year":
        if value in (NINETY_PLUS, UNKNOWN):
            return value
        width = _BAND_WIDTHS[level]
        lo = int(value) - int(value) % width
        return f"{lo}-{lo + width - 1}"
    if qi == "zip3":
        if value in ("000", UNKNOWN):
            return value
        return value[:3 - level] + TOP * level
    return TOP


def classes(rows: Sequence[tuple[str, ...]]) -> Counter[tuple[str, ...]]:
    """Equivalence classes: how many rows share each quasi-identifier combination."""
    return Counter(rows)


def k_of(rows: Sequence[tuple[str, ...]]) -> int:
    """The k of a table: the size of its smallest class (0 for an empty table)."""
    counts = classes(rows)
    return min(counts.values()) if counts else 0


def l_of(rows: Sequence[tuple[str, ...]], sensitive: Sequence[str]) -> int:
    """The distinct l of a table: the fewest distinct sensitive values in any class (0 when empty)."""
    seen: dict[tuple[str, ...], set[str]] = {}
    for row, value in zip(rows, sensitive, strict=True):
        seen.setdefault(row, set()).add(value)
    return min((len(v) for v in seen.values()), default=0)


@dataclass(frozen=True, slots=True)
class Anonymisation:
    """The chosen generalisation: levels per quasi-identifier, each patient's generalised row (None
    when suppressed), how many were suppressed, and the k and l the released rows achieve."""

    quasi_identifiers: tuple[str, ...]
    levels: tuple[int, ...]
    rows: tuple[tuple[str, ...] | None, ...]
    suppressed: int
    k: int
    l: int | None  # noqa: E741


def _evaluate(base: Sequence[tuple[str, ...]], sensitive: Sequence[str] | None, tables: list[dict[str, list[str]]],
              levels: tuple[int, ...], k: int, l: int | None) -> tuple[list[tuple[str, ...]], set[tuple[str, ...]]]:  # noqa: E741
    rows = [tuple(tables[i][v][levels[i]] for i, v in enumerate(r)) for r in base]
    counts = Counter(rows)
    bad = {c for c, n in counts.items() if n < k}
    if l is not None and sensitive is not None:
        seen: dict[tuple[str, ...], set[str]] = {}
        for row, value in zip(rows, sensitive, strict=True):
            seen.setdefault(row, set()).add(value)
        bad |= {c for c, values in seen.items() if len(values) < l}
    return rows, bad


def anonymise(quasi_identifiers: Sequence[str], base: Sequence[tuple[str, ...]], k: int, l: int | None = None,  # noqa: E741
              sensitive: Sequence[str] | None = None, max_suppression_bp: int = 500) -> Anonymisation:
    """Generalise and suppress ``base`` (each patient's level-0 quasi-identifier values) to k (and l).

    Raises :class:`AnonymityNotMet` (DEID_K_NOT_MET, or DEID_L_NOT_MET when only l fails) when no
    generalisation keeps the suppressed share within ``max_suppression_bp`` basis points, or when
    there is nobody to release.
    """
    qis = tuple(quasi_identifiers)
    n = len(base)
    if n == 0:
        raise AnonymityNotMet("there is nobody to release", {"check": "k-anonymity", "patients": 0},
                              Code.DEID_EMPTY_RELEASE)
    tables: list[dict[str, list[str]]] = []
    for i, qi in enumerate(qis):
        tables.append({v: [generalise(qi, v, lv) for lv in range(HEIGHTS[qi] + 1)] for v in {r[i] for r in base}})
    vectors = sorted(itertools.product(*(range(HEIGHTS[q] + 1) for q in qis)),
                     key=lambda v: (sum(lv * (_LOSS_SCALE // HEIGHTS[q]) for lv, q in zip(v, qis, strict=True)), v))
    best: tuple[int, int, tuple[int, ...], list[tuple[str, ...]], set[tuple[str, ...]]] | None = None
    fewest_bad: tuple[int, tuple[int, ...]] | None = None
    k_reachable = False  # would k alone fit the budget somewhere? then it is l that fails
    for v in vectors:
        loss = sum(lv * (_LOSS_SCALE // HEIGHTS[q]) for lv, q in zip(v, qis, strict=True))
        if best is not None and loss > best[0]:
            break
        rows, bad = _evaluate(base, sensitive, tables, v, k, l)
        removed = sum(1 for r in rows if r in bad)
        if l is not None and not k_reachable:
            small = {c for c, count in Counter(rows).items() if count < k}
            too_small = sum(1 for r in rows if r in small)
            k_reachable = too_small * 10_000 <= max_suppression_bp * n and too_small < n
        if fewest_bad is None or removed < fewest_bad[0]:
            fewest_bad = (removed, v)
        if removed * 10_000 <= max_suppression_bp * n and removed < n:
            candidate = (loss, removed, v, rows, bad)
            if best is None or (candidate[1], candidate[2]) < (best[1], best[2]):
                best = candidate
    if best is None:
        assert fewest_bad is not None
        removed, v = fewest_bad
        l_fault = k_reachable
        report: dict[str, object] = {
            "check": "l-diversity" if l_fault else "k-anonymity", "k_required": k, "l_required": l,
            "patients": n, "max_suppression_bp": max_suppression_bp, "least_suppression": removed,
            "at_levels": dict(zip(qis, v, strict=True))}
        raise AnonymityNotMet(f"no generalisation reaches k={k}{f', l={l}' if l else ''} while suppressing at most "
                              f"{max_suppression_bp / 100:.2f}% of {n} patients (the least is {removed})", report,
                              Code.DEID_L_NOT_MET if l_fault else Code.DEID_K_NOT_MET)
    _, removed, v, rows, bad = best
    kept = tuple(None if r in bad else r for r in rows)
    released = [r for r in kept if r is not None]
    achieved_l = None
    if l is not None and sensitive is not None:
        achieved_l = l_of(released, [s for s, r in zip(sensitive, kept, strict=True) if r is not None])
    return Anonymisation(qis, v, kept, removed, k_of(released), achieved_l)
