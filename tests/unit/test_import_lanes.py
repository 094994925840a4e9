"""Lanes of an import: rows that can affect each other are posted in one lane, in file order."""

from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from coalition.services.imports import lanes, originals_named

LANES = 64  # many lanes: rows with nothing in common seldom share one by chance


def earn(external_id, member, partner="aroma"):
    return {"type": "earn", "partner_id": partner, "external_id": external_id, "member_id": member}


def burn(external_id, member, partner="aroma"):
    return {"type": "burn", "partner_id": partner, "external_id": external_id, "member_id": member}


def reversal(external_id, original, partner="aroma", kind="burn_reversal", member=None):
    request = {
        "type": kind,
        "partner_id": partner,
        "external_id": external_id,
        "original_external_id": original,
    }
    return request if member is None else {**request, "member_id": member}


def test_rows_with_nothing_in_common_spread_over_the_lanes():
    requests = [earn(f"e-{n}", f"card-{n}") for n in range(40)]
    assert len(set(lanes(requests, {}, LANES))) > 10


def test_a_members_rows_share_a_lane():
    requests = [earn("e-1", "card-1"), earn("e-2", "card-2"), burn("b-1", "card-1")]
    lane_of = lanes(requests, {}, LANES)
    assert lane_of[0] == lane_of[2]


def test_a_key_used_again_for_another_member_joins_both_members():
    """If the first row is refused, the second is the one posted, for its own member:
    so it must stay in order with both members' rows."""
    requests = [
        burn("k", "card-1"),
        earn("e-2", "card-2"),
        burn("k", "card-2"),
        burn("b-3", "card-2"),
        burn("b-4", "card-1"),
    ]
    assert len(set(lanes(requests, {}, LANES))) == 1


def test_the_same_external_id_of_two_partners_is_two_keys():
    requests = [earn("same", "card-1", partner="aroma"), earn("same", "card-2", partner="gym")]
    assert len(set(lanes(requests, {}, LANES))) == 2


def test_a_reversal_joins_its_original_in_the_slice_even_before_it():
    requests = [
        reversal("r-1", "b-1"),  # refused: its original comes later, as if posted alone
        earn("e-2", "card-2"),
        burn("b-1", "card-1"),
        earn("e-1", "card-1"),
    ]
    lane_of = lanes(requests, {}, LANES)
    assert lane_of[0] == lane_of[2] == lane_of[3]


def test_a_reversal_of_a_posted_original_joins_the_originals_member():
    requests = [earn("e-2", "card-2"), reversal("r-1", "b-0"), burn("b-1", "card-1")]
    posted = {("aroma", "b-0"): "card-1"}
    lane_of = lanes(requests, posted, LANES)
    assert lane_of[1] == lane_of[2]
    assert originals_named(requests) == {("aroma", "b-0")}


def test_rows_that_touch_nothing_go_to_the_first_lane():
    requests = [ValidationError("bad"), {**earn("e-1", "card-1"), "partner_id": None}]
    assert lanes(requests, {}, LANES) == [0, 0]


KEYS = st.sampled_from("abcdefgh")  # few of each, so rows often share one
MEMBERS = st.sampled_from("mnopqrst")
PARTNERS = st.sampled_from(["aroma", "gym"])

requests = st.lists(
    st.one_of(
        st.builds(
            lambda kind, key, member, partner: {
                "type": kind,
                "partner_id": partner,
                "external_id": key,
                "member_id": member,
            },
            st.sampled_from(["earn", "bonus", "burn"]),
            KEYS,
            MEMBERS,
            PARTNERS,
        ),
        st.builds(
            lambda kind, key, original, partner, member: reversal(key, original, partner, kind, member),
            st.sampled_from(["earn_reversal", "burn_reversal"]),
            KEYS,
            KEYS,
            PARTNERS,
            st.none() | MEMBERS,
        ),
    ),
    max_size=30,
)


posted_originals = st.dictionaries(st.tuples(PARTNERS, KEYS), MEMBERS)


@given(requests, posted_originals, st.integers(1, 5))
def test_rows_sharing_a_member_a_key_or_an_original_share_a_lane(requests, posted, count):
    lane_of = lanes(requests, posted, count)
    assert all(0 <= lane < count for lane in lane_of)

    def touches(request) -> set:
        """What a row reads or writes that another row may also: its key, its member,
        its original's key and the original's member if already posted."""
        touched = {("key", request["partner_id"], request["external_id"])}
        if request.get("member_id"):
            touched.add(("member", request["member_id"]))
        if "original_external_id" in request:
            original = (request["partner_id"], request["original_external_id"])
            touched.add(("key", *original))
            if original in posted:
                touched.add(("member", posted[original]))
        return touched

    for i, first in enumerate(requests):
        for j in range(i + 1, len(requests)):
            if touches(first) & touches(requests[j]):
                assert lane_of[i] == lane_of[j], (first, requests[j])
