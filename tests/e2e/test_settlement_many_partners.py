"""A coalition of many partners: a settlement reads its pair lines a few times in all,
not once per partner (SPEC §7).

400 partners trade some 90,000 pair lines; reading every line for every partner's
figures and again for every statement made a draft take 40 s and a close longer,
holding the calendar lock that postings wait 30 s for. The month is
:func:`small_month` with idle partners beside it, and the pair lines the
settlement computes count how often they are walked.
"""

from coalition.domain import settlement as arithmetic
from tests.e2e.settlement_world import add_partner, close, expect, small_month, statement_of

IDLE_PARTNERS = 30


class _Walked(list):
    """A list of pair lines that counts how often it is iterated."""

    walks = 0

    def __iter__(self):
        type(self).walks += 1
        return super().__iter__()


def test_pair_lines_are_walked_a_few_times_whatever_the_partners(operator, monkeypatch):
    period_id = small_month(operator)
    for number in range(IDLE_PARTNERS):
        add_partner(operator, f"idle-{number:02d}", f"Idle {number}", "shop", "EUR")
    priced = arithmetic.pair_lines
    monkeypatch.setattr(arithmetic, "pair_lines", lambda *a: _Walked(priced(*a)))
    monkeypatch.setattr(_Walked, "walks", 0)

    draft = expect(operator.get(f"/api/v1/settlements/{period_id}"), 200)
    assert len(draft["partners"]) == IDLE_PARTNERS + 3
    assert _Walked.walks < 10, f"{_Walked.walks} walks of the pair lines for one draft"

    monkeypatch.setattr(_Walked, "walks", 0)
    closed = close(operator, period_id)
    assert _Walked.walks < 10, f"{_Walked.walks} walks of the pair lines for one close"
    # the figures are those small_month works out
    assert closed["pair_lines"] == draft["pair_lines"]
    aroma = statement_of(operator, "aroma", period_id)
    assert aroma["summary"]["points_redeemed"] == 2345
    assert [(c["partner_id"], c["points_in"], c["points_out"], c["net"])
            for c in aroma["counterparties"]] == [("skyair", 2345, 67, "22.78")]
    idle = statement_of(operator, "idle-00", period_id)
    assert idle["counterparties"] == [] and idle["summary"]["points_redeemed"] == 0
