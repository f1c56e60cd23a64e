"""The demo city has the real city's figures, a well-formed tree, sane systems, and is the same for a seed."""

from __future__ import annotations

import re
from collections import Counter

from cloudctl.demo.city import DemoCity, generate_city

SEEDS = (2026, 0, 7, 123456789)
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PHONE = re.compile(r"^(1[358]\d{9}|0\d{3}-8\d{7})$")
PARENT_KIND = {"department": "city", "municipal_unit": "city", "county": "city", "town": "county",
               "village": "town"}


def _cities() -> list[DemoCity]:
    return [generate_city(seed) for seed in SEEDS]


def test_counts_are_the_real_citys() -> None:
    for city in _cities():
        kinds = Counter(u.kind for u in city.units)
        assert kinds == {"city": 1, "department": 35, "municipal_unit": 100, "county": 8, "town": 110,
                         "village": 1503}
        assert len(city.units) == 1757
        assert len(city.systems) == 70
        assert city.departments == tuple(u.code for u in city.units if u.kind == "department")
        assert city.name == city.units[0].name


def test_codes_are_unique_well_formed_and_follow_the_division_scheme() -> None:
    for city in _cities():
        codes = [u.code for u in city.units]
        assert len(set(codes)) == len(codes)
        for unit in city.units:
            assert CODE.match(unit.code), unit.code
            assert len(unit.code) <= 32
            if unit.kind in ("town", "village"):
                assert unit.parent_code is not None
                assert re.fullmatch(re.escape(unit.parent_code) + r"\d{3}", unit.code), unit.code
        assert city.units[0].code == "990100"
        assert city.departments[0] == "990100-D01"
        assert city.departments[-1] == "990100-D35"
        municipal = [u.code for u in city.units if u.kind == "municipal_unit"]
        assert municipal[0] == "990100-M001"
        assert municipal[-1] == "990100-M100"
        assert all(re.fullmatch(r"99\d{4}", u.code) for u in city.units if u.kind == "county")


def test_parents_exist_come_first_and_are_of_the_right_kind() -> None:
    for city in _cities():
        kind_of: dict[str, str] = {}
        for unit in city.units:
            if unit.parent_code is None:
                assert unit.kind == "city"
            else:
                assert unit.parent_code in kind_of, f"{unit.code} comes before its parent"
                assert kind_of[unit.parent_code] == PARENT_KIND[unit.kind]
            kind_of[unit.code] = unit.kind


def test_names_are_sane_and_unique_within_their_parent() -> None:
    for city in _cities():
        siblings = Counter((u.parent_code, u.name) for u in city.units)
        assert max(siblings.values()) == 1, siblings.most_common(1)
        for unit in city.units:
            assert 0 < len(unit.name) <= 64
            assert unit.contact_name
            assert len(unit.contact_name) <= 64
            assert PHONE.match(unit.contact_phone), unit.contact_phone
            assert unit.contact_email.isascii()
            assert unit.contact_email.endswith("@gov.example.cn")
        for unit in city.units:
            if unit.kind == "town":
                assert unit.name.endswith(("镇", "乡", "街道")), unit.name
            elif unit.kind == "village":
                assert unit.name.endswith(("村", "社区")), unit.name
        assert len({u.name for u in city.units if u.kind in ("department", "municipal_unit")}) == 135


def test_towns_and_villages_are_spread_over_every_parent() -> None:
    for city in _cities():
        towns_per_county = Counter(u.parent_code for u in city.units if u.kind == "town")
        villages_per_town = Counter(u.parent_code for u in city.units if u.kind == "village")
        assert len(towns_per_county) == 8
        assert min(towns_per_county.values()) >= 8
        assert len(villages_per_town) == 110
        assert min(villages_per_town.values()) >= 5
        # Uneven, as real places are.
        assert len(set(towns_per_county.values())) > 1


def test_every_department_has_systems_with_sane_mlps_levels() -> None:
    for city in _cities():
        per_department = Counter(s.unit_code for s in city.systems)
        assert set(per_department) == set(city.departments)
        assert max(per_department.values()) in (4, 5)
        assert sum(1 for n in per_department.values() if n >= 4) >= 2
        levels = Counter(s.mlps_level for s in city.systems)
        assert set(levels) <= {1, 2, 3, 4}
        assert 1 <= levels[1] <= 7
        assert levels[4] <= 2
        assert levels[2] + levels[3] >= 60
        assert len({(s.unit_code, s.name) for s in city.systems}) == 70
        for system in city.systems:
            assert 0 < len(system.name) <= 64
            assert system.description.endswith("。")
            assert system.contact_name
            assert PHONE.match(system.contact_phone)


def test_same_seed_same_city() -> None:
    assert generate_city(11) == generate_city(11)
    assert generate_city() == generate_city(2026)
    assert generate_city(11) != generate_city(12)

