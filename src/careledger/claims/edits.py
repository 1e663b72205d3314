"""Coding edit tables: NCCI procedure-to-procedure (PTP) edits and medically unlikely edits (MUE).

Semantics (CMS NCCI; applied by :mod:`careledger.claims.adjudication`):

* **PTP**: a pair (column 1, column 2) of codes that are not both paid for the same beneficiary, by
  the same provider, on the same date of service: the column 2 line is denied (CO-236). An edit is
  in force on a date when ``effective_day <= day < deletion_day`` (no deletion date: open). Its
  *modifier indicator*: ``0`` no modifier lets the pair through; ``1`` an NCCI-associated modifier
  (:data:`careledger.claims.codes.NCCI_MODIFIERS`) on either line of the pair lets it through;
  ``9`` the edit was deleted retroactively and never applies.
* **MUE**: the most units of a code for one beneficiary on one date. The *MUE adjudication
  indicator* (MAI): ``1`` a claim-line edit (each line on its own; more units may be billed on
  separate lines with modifiers); ``2`` a date-of-service edit of policy (units of all lines and of
  paid claims that date are added; never overridden); ``3`` a date-of-service edit of clinical
  judgement (added the same way; an insurer may override it on appeal with documentation). Excess
  units deny the line(s) (CO-151).

The CMS tables name CPT codes (AMA copyright: internal use under the AMA licence, no redistribution),
so the repository ships none: :func:`load_cms_ptp` and :func:`load_cms_mue` read the CMS file
layouts from an operator's own licensed copy, and ``claims/data/`` holds synthetic tables (HCPCS
Level II, SNOMED CT codes as Synthea emits them, and made-up local ``ZZ`` codes).

Each table set has a name and a version, and a digest over its canonical form: the version a
governance vote approves on the ledger, and the one an adjudication names.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from careledger.core import codec
from careledger.core.errors import Code, LedgerError

from .content import day_of

HCPCS_SYSTEM: Final = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
CPT_SYSTEM: Final = "http://www.ama-assn.org/go/cpt"
CMS_SYSTEMS: Final = (CPT_SYSTEM, HCPCS_SYSTEM)
DATA_DIR: Final = Path(__file__).resolve().parent / "data"
_CODE = re.compile(r"[A-Z0-9]{5}")
_YYYYMMDD = re.compile(r"[0-9]{8}")
_NAME = re.compile(r"[a-z][a-z0-9-]{1,47}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


class EditTableInvalid(LedgerError):
    default_code = Code.EDIT_TABLE_INVALID


@dataclass(frozen=True, slots=True)
class PtpEdit:
    column1: str
    column2: str
    effective_day: int
    deletion_day: int | None
    modifier_indicator: int

    def in_force(self, day: int) -> bool:
        """Does the edit apply to a service on ``day``? (Never, with modifier indicator 9.)"""
        return (self.modifier_indicator != 9 and self.effective_day <= day
                and (self.deletion_day is None or day < self.deletion_day))

    def to_json(self) -> list[Any]:
        return [self.column1, self.column2, self.effective_day, self.deletion_day, self.modifier_indicator]


@dataclass(frozen=True, slots=True)
class MueEdit:
    code: str
    max_units: int
    mai: int

    def to_json(self) -> list[Any]:
        return [self.code, self.max_units, self.mai]


@dataclass(frozen=True)
class EditTables:
    """A versioned set of PTP and MUE edits for the code ``systems`` it applies to."""

    name: str
    version: str
    effective_day: int
    source: str
    systems: tuple[str, ...]
    ptp: tuple[PtpEdit, ...]
    mue: tuple[MueEdit, ...]
    digest: str = field(compare=False)
    _by_column2: dict[str, tuple[PtpEdit, ...]] = field(repr=False, compare=False)
    _mue: dict[str, MueEdit] = field(repr=False, compare=False)

    @classmethod
    def build(cls, name: str, version: str, effective_day: int, source: str, systems: Iterable[str],
              ptp: Iterable[PtpEdit], mue: Iterable[MueEdit]) -> EditTables:
        """Sort and index the edits. Raises EditTableInvalid (EDIT_TABLE_INVALID) for a bad name or
        version, a modifier indicator outside 0/1/9, an MAI outside 1/2/3, a deletion before the
        effective date, a negative MUE value, or a repeated (column 1, column 2, effective) row or MUE code."""
        if not _NAME.fullmatch(name) or not _VERSION.fullmatch(version):
            raise EditTableInvalid("an edit table needs a name (a-z0-9-) and a version (A-Za-z0-9._-)")
        ptp_rows = sorted(ptp, key=lambda e: (e.column2, e.column1, e.effective_day))
        mue_rows = sorted(mue, key=lambda e: e.code)
        by_col2: dict[str, list[PtpEdit]] = {}
        seen: set[tuple[str, str, int]] = set()
        for e in ptp_rows:
            if e.modifier_indicator not in (0, 1, 9):
                raise EditTableInvalid(f"PTP {e.column1}/{e.column2}: modifier indicator must be 0, 1 or 9")
            if e.deletion_day is not None and e.deletion_day < e.effective_day:
                raise EditTableInvalid(f"PTP {e.column1}/{e.column2}: deleted before it took effect")
            key = (e.column1, e.column2, e.effective_day)
            if key in seen:
                raise EditTableInvalid(f"PTP {e.column1}/{e.column2} repeats")
            seen.add(key)
            by_col2.setdefault(e.column2, []).append(e)
        mue_index: dict[str, MueEdit] = {}
        for m in mue_rows:
            if m.mai not in (1, 2, 3) or m.max_units < 0:
                raise EditTableInvalid(f"MUE {m.code}: MAI must be 1, 2 or 3 and the value not negative")
            if m.code in mue_index:
                raise EditTableInvalid(f"MUE {m.code} repeats")
            mue_index[m.code] = m
        systems_t = tuple(sorted(set(systems)))
        body = {"effective_day": effective_day, "mue": [m.to_json() for m in mue_rows], "name": name,
                "ptp": [e.to_json() for e in ptp_rows], "source": source, "systems": list(systems_t),
                "version": version}
        digest = hashlib.sha256(codec.encode(body)).hexdigest()
        return cls(name, version, effective_day, source, systems_t, tuple(ptp_rows), tuple(mue_rows), digest,
                   {k: tuple(v) for k, v in by_col2.items()}, mue_index)

    def applies_to(self, system: str) -> bool:
        return system in self.systems

    def ptp_with_column2(self, code: str) -> tuple[PtpEdit, ...]:
        return self._by_column2.get(code, ())

    def mue_for(self, code: str) -> MueEdit | None:
        return self._mue.get(code)

    def ref(self) -> dict[str, Any]:
        """How an adjudication names this table set: name, version and digest."""
        return {"digest": self.digest, "name": self.name, "version": self.version}

    def to_json(self) -> dict[str, Any]:
        return {"effective_day": self.effective_day, "mue": [m.to_json() for m in self.mue], "name": self.name,
                "ptp": [e.to_json() for e in self.ptp], "source": self.source, "systems": list(self.systems),
                "version": self.version}

    @classmethod
    def from_json(cls, doc: Any) -> EditTables:
        """The canonical form :meth:`to_json` writes. Raises EditTableInvalid."""
        try:
            return cls.build(doc["name"], doc["version"], int(doc["effective_day"]), doc["source"], doc["systems"],
                             (PtpEdit(str(a), str(b), int(c), None if d is None else int(d), int(m))
                              for a, b, c, d, m in doc["ptp"]),
                             (MueEdit(str(c), int(v), int(i)) for c, v, i in doc["mue"]))
        except (KeyError, TypeError, ValueError):
            raise EditTableInvalid("not an edit table document") from None


# --- the synthetic tables shipped with CareLedger ------------------------------------------------------------

def load_edit_tables(path: Path) -> EditTables:
    """An edit table set from a JSON file (the form of ``claims/data/*.json``)::

        {"name", "version", "effective": "YYYY-MM-DD", "source", "systems": [...],
         "ptp": [{"column1", "column2", "effective", "deletion": null | date, "modifier_indicator"}],
         "mue": [{"code", "max_units", "mai"}]}

    Raises EditTableInvalid for a file that cannot be read or does not have this shape.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        ptp = [PtpEdit(r["column1"], r["column2"], day_of(r["effective"]),
                       None if r["deletion"] is None else day_of(r["deletion"]), r["modifier_indicator"])
               for r in doc["ptp"]]
        mue = [MueEdit(r["code"], r["max_units"], r["mai"]) for r in doc["mue"]]
        return EditTables.build(doc["name"], doc["version"], day_of(doc["effective"]), doc["source"],
                                doc["systems"], ptp, mue)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise EditTableInvalid(f"{path.name}: not an edit table file ({type(exc).__name__})") from None


def synthetic_tables() -> EditTables:
    """The synthetic practitioner edit set shipped in ``claims/data`` (no CPT content)."""
    return load_edit_tables(DATA_DIR / "synthetic-edits.json")


# --- the CMS file layouts (an operator's own licensed copy) ---------------------------------------------------

def _rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(line number, fields) of a CMS tab-delimited ``.txt`` or comma-separated ``.csv`` file."""
    text = path.read_bytes().decode("latin-1")  # the CMS files are not UTF-8
    delimiter = "\t" if "\t" in text else ","
    for n, fields in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        yield n, [f.strip() for f in fields]


def _yyyymmdd(text: str) -> int:
    return day_of(f"{text[:4]}-{text[4:6]}-{text[6:8]}")


def load_cms_ptp(path: Path) -> list[PtpEdit]:
    """The PTP edits of a CMS NCCI PTP file (practitioner or outpatient hospital).

    Layout (tab-delimited text, or the same columns as CSV), after notice and header lines::

        Column 1 | Column 2 | * (in existence before 1996) | Effective Date (YYYYMMDD) |
        Deletion Date (YYYYMMDD, or * for none) | Modifier (0 / 1 / 9) | PTP Edit Rationale

    A line whose first two fields are not both five-character codes is a notice or header and is
    skipped; any other line must parse completely, or EditTableInvalid names its line number.
    """
    edits = []
    try:
        for n, f in _rows(path):
            if len(f) < 6 or not (_CODE.fullmatch(f[0]) and _CODE.fullmatch(f[1])):
                continue
            if not _YYYYMMDD.fullmatch(f[3]) or not (f[4] == "*" or _YYYYMMDD.fullmatch(f[4])) \
                    or f[5] not in ("0", "1", "9"):
                raise EditTableInvalid(f"{path.name} line {n}: not a PTP edit row")
            edits.append(PtpEdit(f[0], f[1], _yyyymmdd(f[3]), None if f[4] == "*" else _yyyymmdd(f[4]), int(f[5])))
    except (OSError, ValueError) as exc:
        raise EditTableInvalid(f"{path.name}: cannot read the PTP file ({type(exc).__name__})") from None
    return edits


def load_cms_mue(path: Path) -> list[MueEdit]:
    """The MUEs of a CMS MUE file (practitioner, outpatient hospital or DME).

    Layout (CSV, or tab-delimited), after notice and header lines::

        HCPCS/CPT Code | MUE Value | MUE Adjudication Indicator ("1 Line Edit", "2 Date of Service
        Edit: Policy", "3 Date of Service Edit: Clinical") | MUE Rationale

    Lines not starting with a five-character code are skipped; any other must parse (EditTableInvalid).
    """
    edits = []
    try:
        for n, f in _rows(path):
            if len(f) < 3 or not _CODE.fullmatch(f[0]):
                continue
            if not f[1].isdigit() or f[2][:1] not in ("1", "2", "3"):
                raise EditTableInvalid(f"{path.name} line {n}: not an MUE row")
            edits.append(MueEdit(f[0], int(f[1]), int(f[2][0])))
    except (OSError, ValueError) as exc:
        raise EditTableInvalid(f"{path.name}: cannot read the MUE file ({type(exc).__name__})") from None
    return edits


def cms_edit_tables(name: str, version: str, effective_day: int, ptp_files: Iterable[Path],
                    mue_files: Iterable[Path], systems: Iterable[str] = CMS_SYSTEMS) -> EditTables:
    """One edit set from an operator's CMS PTP and MUE files (e.g. the four practitioner PTP parts)."""
    ptp = [e for p in ptp_files for e in load_cms_ptp(p)]
    mue = [e for p in mue_files for e in load_cms_mue(p)]
    return EditTables.build(name, version, effective_day, "cms", systems, ptp, mue)
