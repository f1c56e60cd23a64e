"""The demo city has the real city's figures, a well-formed tree, and is the same for the same seed."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from cloudctl.demo.city import generate_city

PARENT_KIND = {"department": "city", "municipal_unit": "city", "county": "city", "town": "county",
               "village": "town"}


@pytest.fixture(scope="module", params=[2026, 7])
def city(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return generate_city(request.param)


def test_counts_are_the_real_citys(city) -> None:  # type: ignore[no-untyped-def]
    kinds = Counter(u.kind for u in city.units)
    assert kinds == {"city": 1, "department": 35, "municipal_unit": 100, "county": 8, "town": 110,
                     "village": 1503}
    assert len(city.systems) == 70
    assert len(city.departments) == 35


def test_tree_is_well_formed(city) -> None:  # type: ignore[no-untyped-def]
    kind_of: dict[str, str] = {}
    for unit in city.units:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", unit.code)
        assert unit.code not in kind_of, f"duplicate code {unit.code}"
        if unit.parent_code is None:
            assert unit.kind == "city"
        else:
            assert kind_of[unit.parent_code] == PARENT_KIND[unit.kind]  # parents come first
        assert 0 < len(unit.name) <= 64
        kind_of[unit.code] = unit.kind
    siblings = Counter((u.parent_code, u.name) for u in city.units)
    assert max(siblings.values()) == 1
    towns_per_county = Counter(u.parent_code for u in city.units if u.kind == "town")
    villages_per_town = Counter(u.parent_code for u in city.units if u.kind == "village")
    assert min(towns_per_county.values()) >= 8
    assert min(villages_per_town.values()) >= 5


def test_every_department_has_systems_with_sane_mlps_levels(city) -> None:  # type: ignore[no-untyped-def]
    per_department = Counter(s.unit_code for s in city.systems)
    assert set(per_department) == set(city.departments)
    assert max(per_department.values()) <= 5
    levels = Counter(s.mlps_level for s in city.systems)
    assert set(levels) <= {1, 2, 3, 4}
    assert levels[4] <= 2
    assert levels[2] + levels[3] >= 55
    assert len({(s.unit_code, s.name) for s in city.systems}) == 70


def test_same_seed_same_city() -> None:
    assert generate_city(11) == generate_city(11)
    assert generate_city(11) != generate_city(12)
