"""HIPAA Safe Harbor geography: a ZIP code becomes its first three digits, or ``000`` (pure).

45 CFR §164.514(b)(2)(i)(B): the initial three digits of a ZIP code may be kept only where the
geographic unit formed by all ZIP codes with those three digits contains *more than* 20,000 people
per current Census data; otherwise they become ``000``. The restricted three-digit areas (20,000
people or fewer) come from published, Census-derived lists vendored in ``data/zip3-restricted.json``
(see ``data/SOURCES.md``), each with its Census vintage; a release records the list and vintage used.

Only a US ZIP (five digits, or ZIP+4) is generalised: any other postal code is removed, since it is
a geographic subdivision smaller than a State that no list can vouch for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from careledger.core.errors import Code, LedgerError

RESTRICTED = "000"
_US_ZIP = re.compile(r"([0-9]{3})[0-9]{2}(-[0-9]{4})?")


@dataclass(frozen=True, slots=True)
class Zip3List:
    """A named list of restricted ZIP3 areas and the Census vintage it comes from."""

    id: str
    vintage: int
    source: str
    restricted: frozenset[str]

    def generalise(self, postal_code: str) -> str | None:
        """``"980"`` for ``"98052"``; ``"000"`` for a restricted area; None for anything but a US ZIP."""
        m = _US_ZIP.fullmatch(postal_code.strip())
        if m is None:
            return None
        return RESTRICTED if m.group(1) in self.restricted else m.group(1)


@lru_cache(maxsize=1)
def _lists() -> dict[str, Zip3List]:
    doc = json.loads(resources.files("careledger.research").joinpath("data/zip3-restricted.json").read_text())
    return {name: Zip3List(name, int(v["vintage"]), str(v["source"]), frozenset(v["restricted"]))
            for name, v in sorted(doc.items())}


def zip3_list(name: str) -> Zip3List:
    """The vendored list called ``name``. Raises LedgerError(DEID_CONFIG_INVALID) for an unknown one."""
    try:
        return _lists()[name]
    except KeyError:
        raise LedgerError(f"no vendored ZIP3 list {name!r} (known: {', '.join(sorted(_lists()))})",
                          Code.DEID_CONFIG_INVALID) from None


def zip3_lists() -> list[str]:
    return sorted(_lists())
