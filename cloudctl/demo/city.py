"""A deterministic demo city modelled on a real one's figures (see shared/GLOSSARY.md).

1 city, 135 municipal units of which 35 are departments, 8 counties, 110 towns, 1,503 villages,
and 70 business systems of the departments. Pure: no database, no I/O; the same seed always builds
the same city, and every seed builds one with exactly these counts.

Codes follow the administrative-division scheme under the fictional prefix 99 (no real province),
so demo data never passes for a real city's: city ``990100``; departments ``990100-D01``;
other municipal units ``990100-M001``; counties ``990102``; towns ``990102001``;
villages ``990102001001``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from cloudctl.demo import names

__all__ = ["DemoCity", "DemoSystem", "DemoUnit", "UnitKind", "generate_city"]

UnitKind = Literal["city", "department", "municipal_unit", "county", "town", "village"]

CITY_CODE = "990100"
EMAIL_DOMAIN = "gov.example.cn"
AREA_CODE = "0799"
MOBILE_PREFIXES = ("135", "138", "139", "150", "158", "159", "186", "187", "189")
N_MUNICIPAL_UNITS = 100
N_TOWNS = 110
N_VILLAGES = 1503
N_SYSTEMS = 70
MIN_TOWNS_PER_COUNTY = 8
MIN_VILLAGES_PER_TOWN = 5
MAX_SYSTEMS_PER_DEPARTMENT = 5

_VILLAGE_POOL = tuple(stem + root + "村" for stem in names.VILLAGE_STEMS for root in names.VILLAGE_ROOTS)
_COMMUNITY_POOL = tuple(
    stem + form + "社区" for stem in names.COMMUNITY_STEMS for form in names.COMMUNITY_FORMS
)


@dataclass(frozen=True, slots=True)
class DemoUnit:
    code: str
    name: str
    kind: UnitKind
    parent_code: str | None
    contact_name: str
    contact_phone: str
    contact_email: str


@dataclass(frozen=True, slots=True)
class DemoSystem:
    unit_code: str
    name: str
    mlps_level: int
    contact_name: str
    contact_phone: str
    description: str


@dataclass(frozen=True, slots=True)
class DemoCity:
    name: str
    units: tuple[DemoUnit, ...]
    systems: tuple[DemoSystem, ...]
    departments: tuple[str, ...]


def generate_city(seed: int = 2026) -> DemoCity:
    """Build the demo city for ``seed``; units come parents first, in code order within a parent."""
    rng = random.Random(seed)
    units: list[DemoUnit] = [_unit(rng, CITY_CODE, names.CITY_NAME, "city", None)]

    departments = [f"{CITY_CODE}-D{i:02d}" for i in range(1, len(names.DEPARTMENTS) + 1)]
    units += [_unit(rng, code, name, "department", CITY_CODE)
              for code, name in zip(departments, names.DEPARTMENTS, strict=True)]

    # Keep the word list's order so related units (hospitals, schools …) stay together.
    picked = sorted(rng.sample(range(len(names.MUNICIPAL_UNITS)), N_MUNICIPAL_UNITS))
    units += [_unit(rng, f"{CITY_CODE}-M{i:03d}", names.MUNICIPAL_UNITS[index], "municipal_unit", CITY_CODE)
              for i, index in enumerate(picked, start=1)]

    counties = [_unit(rng, f"{CITY_CODE[:4]}{i:02d}", name, "county", CITY_CODE)
                for i, name in enumerate(names.COUNTIES, start=2)]
    units += counties

    towns = _towns(rng, counties)
    units += towns
    units += _villages(rng, towns)

    return DemoCity(name=names.CITY_NAME, units=tuple(units), systems=tuple(_systems(rng, departments)),
                    departments=tuple(departments))


def _towns(rng: random.Random, counties: list[DemoUnit]) -> list[DemoUnit]:
    # Urban districts have fewer, smaller towns (mostly 街道); rural counties have more (镇 and 乡).
    weights = [rng.uniform(0.6, 1.1) if c.name.endswith("区") else rng.uniform(1.0, 1.8) for c in counties]
    per_county = _spread(rng, N_TOWNS, weights, MIN_TOWNS_PER_COUNTY)
    # Town names are unique across the city, as they are in a real one.
    stems = iter(rng.sample(names.TOWN_STEMS, N_TOWNS))
    towns: list[DemoUnit] = []
    for county, count in zip(counties, per_county, strict=True):
        if county.name.endswith("区"):
            n_streets = count - rng.randint(0, 2)
        elif county.name.endswith("市"):
            n_streets = rng.randint(3, 4)
        else:
            n_streets = rng.randint(1, 2)  # a rural county has 街道 only in its seat
        for i in range(1, count + 1):
            suffix = "街道" if i <= n_streets else ("乡" if rng.random() < 0.25 else "镇")
            towns.append(_unit(rng, f"{county.code}{i:03d}", next(stems) + suffix, "town", county.code))
    return towns


def _villages(rng: random.Random, towns: list[DemoUnit]) -> list[DemoUnit]:
    weights = [rng.uniform(0.5, 1.0) if t.name.endswith("街道") else rng.uniform(0.8, 1.8) for t in towns]
    per_town = _spread(rng, N_VILLAGES, weights, MIN_VILLAGES_PER_TOWN)
    villages: list[DemoUnit] = []
    for town, count in zip(towns, per_town, strict=True):
        stem = town.name.removesuffix("街道").removesuffix("镇").removesuffix("乡")
        if town.name.endswith("街道"):
            n_communities = count - rng.choice((0, 0, 0, 1, 2))
        elif town.name.endswith("镇"):
            n_communities = rng.choice((1, 1, 2))
        else:
            n_communities = 1 if rng.random() < 0.3 else 0
        # The seat of a town is the community named after it (青山镇 → 青山社区).
        seat = [stem + "社区"] if n_communities else []
        others = rng.sample([n for n in _COMMUNITY_POOL if n not in seat], n_communities - len(seat))
        rural = rng.sample(_VILLAGE_POOL, count - n_communities)
        for i, name in enumerate(seat + others + rural, start=1):
            villages.append(_unit(rng, f"{town.code}{i:03d}", name, "village", town.code))
    return villages


def _systems(rng: random.Random, departments: list[str]) -> list[DemoSystem]:
    catalogue = [names.SYSTEMS[name] for name in names.DEPARTMENTS]
    counts = [names.SYSTEM_MINIMUMS.get(name, 1) for name in names.DEPARTMENTS]
    # Top up to the city's 70 where a department still has systems to deploy; departments with a long
    # catalogue are more likely to get another, as big departments run more systems.
    while sum(counts) < N_SYSTEMS:
        room = [i for i, entries in enumerate(catalogue)
                if counts[i] < min(len(entries), MAX_SYSTEMS_PER_DEPARTMENT)]
        index = rng.choices(room, weights=[len(catalogue[i]) - counts[i] for i in room])[0]
        counts[index] += 1
    systems: list[DemoSystem] = []
    for code, department, entries, count in zip(departments, names.DEPARTMENTS, catalogue, counts,
                                                strict=True):
        # The first system is the department's core one and always runs; the others vary with the seed.
        chosen = [entries[0], *rng.sample(entries[1:], count - 1)]
        chosen.sort(key=entries.index)
        for system, level in chosen:
            deployment = rng.choice(names.DEPLOYMENTS)
            systems.append(DemoSystem(
                unit_code=code,
                name=system,
                mlps_level=level,
                contact_name=_person(rng),
                contact_phone=_mobile(rng),
                description=f"{department}{system}，等保{names.LEVEL_NAMES[level]}级，{deployment}。",
            ))
    return systems


def _spread(rng: random.Random, total: int, weights: list[float], minimum: int) -> list[int]:
    """Split ``total`` over the buckets unevenly, as real places are, each at least ``minimum``."""
    counts = [minimum] * len(weights)
    for index in rng.choices(range(len(weights)), weights=weights, k=total - minimum * len(weights)):
        counts[index] += 1
    return counts


def _unit(rng: random.Random, code: str, name: str, kind: UnitKind, parent: str | None) -> DemoUnit:
    # Offices in the city proper are reached on their landline; county, town and village cadres on a mobile.
    phone = _landline(rng) if kind in ("city", "department", "municipal_unit") else _mobile(rng)
    email = code.lower().replace("-", ".") + "@" + EMAIL_DOMAIN
    return DemoUnit(code, name, kind, parent, _person(rng), phone, email)


def _person(rng: random.Random) -> str:
    return rng.choice(names.SURNAMES) + rng.choice(names.GIVEN_NAMES)


def _mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def _landline(rng: random.Random) -> str:
    return f"{AREA_CODE}-8{rng.randrange(10**7):07d}"
