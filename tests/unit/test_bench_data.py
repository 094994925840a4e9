"""The benchmark's generated history (bench/data.py) is as big as its plan says.

Figure (c) is "closing a period with 10 million burn allocations": a generator
that wrote 12 % fewer than planned (each burn after a member's first sized from
what the burns before had left, so many took from one lot only) measured a
smaller close than the goal names. Generated without a database: the rows are
COPY text.
"""

from collections import Counter
from datetime import UTC, datetime

import pytest

from bench import data


def _world() -> data.World:
    partners = {
        spec.id: data.PartnerRuntime.of(
            spec, earn_rate_id=1, fee_rate_id=2, redemption_rate_id=3, key=""
        )
        for spec in data.PARTNERS
    }
    return data.World(partners=partners, operator_key="", rates_from=datetime(2026, 9, 1, tzinfo=UTC))


def _generate(members: int, allocations: int) -> tuple[data.StageResult, list[list[str]]]:
    plan = data.StagePlan(
        stage=1,
        period_id="2026-10",
        start=datetime(2026, 10, 1, tzinfo=UTC),
        end=datetime(2026, 11, 1, tzinfo=UTC),
        members=members,
        allocations=allocations,
        heavy_members=2,
        heavy_lots=20,
    )
    generator = data.Generator(_world(), plan, data._Ids(0, 0, 0))
    lines = [
        line.split("\t")
        for chunk in generator.chunks()
        for line in chunk["allocations"].splitlines()
    ]
    return generator.result, lines


@pytest.mark.parametrize("per_member", [1, 5], ids=["medium's mix", "large's mix"])
def test_a_stage_holds_the_burn_allocations_its_plan_asks_for(per_member):
    members = 4_000
    result, lines = _generate(members, per_member * members)
    written = sum(1 for line in lines if line[2] in ("burn", "burn_reversal"))
    assert written == result.burn_allocations
    assert per_member * members <= written <= 1.05 * per_member * members


def test_every_burn_crosses_one_lot_boundary():
    _, lines = _generate(2_000, 10_000)
    burns = Counter(line[1] for line in lines if line[2] == "burn")
    assert burns and set(burns.values()) == {2}, Counter(burns.values())
