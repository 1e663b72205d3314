"""A small deterministic generator of PHI-shaped FHIR R4 patients, for tests and benchmarks.

``generate_patient(seed, index)`` returns the same resources for the same arguments on any machine
(it draws from :class:`random.Random` seeded by a string). Each patient has a Patient with names,
SSN, MRN and driver's licence identifiers, a phone number, an e-mail address, a street address with a
ZIP code (some in restricted three-digit areas, ``036``, ``059``, ``203``), a birth date (some over
89 years old on :data:`AS_OF`), and about 50 clinical resources: encounters, observations with LOINC
codes and decimal values, conditions from a small SNOMED set (so cohorts and l-diversity have
something to work on), procedures, immunizations and medication requests. Values are in the vault's
exact form (decimals as ``{"$decimal": text}``).
"""

from __future__ import annotations

import random
from typing import Any

AS_OF = "2025-06-30"
AS_OF_DAY = 20269  # 2025-06-30 as days since 1970-01-01
GIVEN = ("Amara", "Bjorn", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hiroshi", "Ines", "Jamal", "Kirsten",
         "Luca", "Maren", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Samir", "Tove")
FAMILY = ("Abernathy", "Brightwater", "Castellano", "Dunmore", "Eriksen", "Fairbanks", "Galloway", "Holmgren",
          "Ivanova", "Jorgensen", "Kowalczyk", "Lindqvist", "Montague", "Nakashima", "Okonkwo", "Pemberton")
STREETS = ("Juniper", "Alder", "Quarry", "Lantern", "Heron", "Marigold", "Orchard", "Willow")
CITIES = (("Redmond", "WA", "980"), ("Seattle", "WA", "981"), ("Tacoma", "WA", "984"), ("Boston", "MA", "021"),
          ("Lowell", "MA", "018"), ("Worcester", "MA", "016"), ("Brattleboro", "VT", "053"),
          ("Hanover", "NH", "036"), ("Eastport", "ME", "059"), ("Washington", "DC", "203"))
CONDITIONS = (("44054006", "Diabetes mellitus type 2"), ("38341003", "Hypertensive disorder"),
              ("195967001", "Asthma"), ("55822004", "Hyperlipidemia"), ("162864005", "Obesity"))
OBSERVATIONS = (("8302-2", "cm", 150, 195), ("29463-7", "kg", 45, 120), ("8867-4", "/min", 50, 110),
                ("2339-0", "mg/dL", 70, 180))
PROCEDURES = ("73761001", "80146002", "232717009")
VACCINES = ("140", "113", "208")
MEDICATIONS = ("860975", "314076", "197361")
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ref(rtype: str, rid: str) -> dict[str, str]:
    return {"reference": f"{rtype}/{rid}"}


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], **({"text": display} if display else {})}


def generate_patient(seed: str, index: int, encounters: int = 8) -> list[dict[str, Any]]:
    """One patient's resources; ``encounters`` sets the size (8 gives about 50 resources)."""
    rng = random.Random(f"careledger-synthetic/{seed}/{index}")
    pid = _uuid(rng)
    given, family = f"{rng.choice(GIVEN)}{rng.randint(100, 999)}", f"{rng.choice(FAMILY)}{rng.randint(100, 999)}"
    city, state, zip3 = rng.choice(CITIES)
    birth_year = rng.randint(1925, 2012)
    birth = f"{birth_year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    sex = rng.choice(("female", "male"))
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": pid,
        "text": {"status": "generated", "div": f"<div xmlns=\"http://www.w3.org/1999/xhtml\">{given} {family}</div>"},
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                       "valueString": f"{rng.choice(FAMILY)}{rng.randint(100, 999)}"}],
        "identifier": [
            {"system": "http://hl7.org/fhir/sid/us-ssn",
             "value": f"999-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"},
            {"type": _concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR"),
             "system": "urn:oid:1.2.36.146.595.217.0.1", "value": f"MRN{rng.randint(10**7, 10**8 - 1)}"},
            {"type": _concept("http://terminology.hl7.org/CodeSystem/v2-0203", "DL"),
             "system": "urn:oid:2.16.840.1.113883.4.3.25", "value": f"S{rng.randint(10**7, 10**8 - 1)}"}],
        "name": [{"use": "official", "family": family, "given": [given],
                  "prefix": ["Ms." if sex == "female" else "Mr."]}],
        "telecom": [{"system": "phone", "value": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                     "use": "home"},
                    {"system": "email", "value": f"{given.lower()}.{family.lower()}@example.org"}],
        "gender": sex, "birthDate": birth,
        "address": [{"use": "home", "line": [f"{rng.randint(1, 9999)} {rng.choice(STREETS)} Lane"], "city": city,
                     "state": state, "postalCode": f"{zip3}{rng.randint(0, 99):02d}", "country": "US"}],
        "maritalStatus": _concept("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", rng.choice("MSWD")),
    }
    resources: list[dict[str, Any]] = [patient]
    subject = _ref("Patient", pid)
    conditions = rng.sample(CONDITIONS, rng.choice((1, 1, 2, 3)))
    first_year = max(birth_year + 18, 2000)
    for e in range(encounters):
        eid = _uuid(rng)
        year = rng.randint(min(first_year, 2024), 2024)
        day = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        resources.append({"resourceType": "Encounter", "id": eid, "status": "finished",
                          "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                          "type": [_concept(SNOMED, "185349003", "Encounter for check up")], "subject": subject,
                          "period": {"start": f"{day}T09:00:00-05:00", "end": f"{day}T09:30:00-05:00"}})
        for code, unit, lo, hi in OBSERVATIONS:
            value = {"$decimal": f"{rng.randint(lo * 10, hi * 10) // 10}.{rng.randint(0, 9)}"}
            resources.append({"resourceType": "Observation", "id": _uuid(rng), "status": "final",
                              "code": _concept(LOINC, code), "subject": subject, "encounter": _ref("Encounter", eid),
                              "effectiveDateTime": f"{day}T09:10:00-05:00", "issued": f"{day}T09:10:00.000-05:00",
                              "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org",
                                                "code": unit}})
        if e < len(conditions):
            code, display = conditions[e]
            resources.append({"resourceType": "Condition", "id": _uuid(rng), "subject": subject,
                              "clinicalStatus": _concept("http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                         "active"),
                              "code": _concept(SNOMED, code, display), "onsetDateTime": f"{day}T09:15:00-05:00",
                              "note": [{"text": f"Discussed with {given} {family} at {city}."}]})
        if e in (2, 5):
            resources.append({"resourceType": "Procedure", "id": _uuid(rng), "status": "completed", "subject": subject,
                              "code": _concept(SNOMED, rng.choice(PROCEDURES)), "performedDateTime": day})
        if e in (1, 6):
            resources.append({"resourceType": "Immunization", "id": _uuid(rng), "status": "completed",
                              "patient": subject, "occurrenceDateTime": day,
                              "vaccineCode": _concept("http://hl7.org/fhir/sid/cvx", rng.choice(VACCINES))})
        if e in (3, 7):
            resources.append({"resourceType": "MedicationRequest", "id": _uuid(rng), "status": "active",
                              "intent": "order", "subject": subject, "authoredOn": day,
                              "medicationCodeableConcept": _concept("http://www.nlm.nih.gov/research/umls/rxnorm",
                                                                    rng.choice(MEDICATIONS)),
                              "dosageInstruction": [{"text": f"Take one daily, {given}"}]})
    return resources


def generate_patients(seed: str, count: int, encounters: int = 8) -> list[list[dict[str, Any]]]:
    return [generate_patient(seed, i, encounters) for i in range(count)]
