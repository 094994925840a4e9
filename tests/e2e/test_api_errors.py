"""SPEC §10: every error is JSON; bad input is a clean 4xx, never a 500; no partial writes.

With ``TESTING`` on, an unhandled exception in a view propagates into the
test instead of becoming a 500, so a test here fails loudly either way.
"""

import gzip
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import jsonschema_rs
import pytest
from marshmallow import ValidationError, validate
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from coalition import MAX_BODY_BYTES, auth, create_app, database_of
from coalition import db as coalition_db
from coalition.db import migrate, models
from coalition.domain import lots, rates
from tests.conftest import POSTGRES_URL, Caller, days_ago, empty_database, held_for_writing
from tests.e2e import test_role_matrix as role_matrix
from tests.e2e.helpers import (
    add_rate,
    balance,
    bonus,
    burn,
    burn_reversal,
    earn,
    earn_reversal,
    expect,
    list_all,
)
from tests.threads import until_waiting_on_locks


def assert_error(response, status: int | None = None):
    """A JSON error body with code, status and message; ``status`` None means any 4xx."""
    if status is None:
        assert 400 <= response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    else:
        assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    body = response.get_json()
    assert isinstance(body, dict), response.get_data(as_text=True)[:300]
    assert body["code"] == response.status_code
    assert body["status"]
    assert body["message"]
    return body


def earn_body(**fields) -> dict:
    return {"external_id": "t1", "type": "earn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(3), "amount": "100.00", "currency": "RUB", **fields}


def raw_post(caller, path: str, text: str):
    return caller.post(path, data=text, content_type="application/json")


# --- malformed JSON: 400 --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['{"external_id": "t1", "type": ', "{bad json}", "{'single': 'quotes'}", '{"a": 1,}', "\xff\xfe"],
    ids=["truncated", "bare-words", "single-quotes", "trailing-comma", "not-utf8"],
)
def test_malformed_json_is_400_with_a_json_error_body(coalition, text):
    body = assert_error(raw_post(coalition, "/api/v1/transactions", text), 400)
    assert body["message"].startswith("the body cannot be read as JSON: ")


def test_malformed_json_is_400_saying_what_is_wrong_and_where(coalition):
    body = assert_error(raw_post(coalition, "/api/v1/transactions", '{"type": "earn",\n "points": 5,}'), 400)
    assert body["message"] == (
        "the body cannot be read as JSON: Expecting property name enclosed in double quotes at line 2, column 14"
    )
    assert body["errors"] == {"json": ["Invalid JSON body."]}


@pytest.mark.parametrize("path", ["/api/v1/transactions", "/api/v1/transactions/batch"])
def test_a_key_given_twice_in_one_object_is_400_and_posts_nothing(coalition, path):
    # the last "amount" won: 5000.00 RUB posted where a reader keeping the first saw 100.00
    earn_text = ('{"external_id": "t1", "type": "earn", "partner_id": "aroma", "member_id": "m1",'
                 f' "occurred_at": "{days_ago(1)}", "amount": "100.00", "currency": "RUB", "amount": "5000.00"}}')
    text = earn_text if path.endswith("transactions") else f'{{"transactions": [{earn_text}]}}'
    body = assert_error(raw_post(coalition, path, text), 400)
    assert body["message"] == "the body cannot be read as JSON: the key 'amount' appears twice in one object"
    assert list_all(coalition) == []
    apart = '{"transactions": [{"external_id": "a"}, {"external_id": "b"}]}'  # once in each of two objects
    results = expect(raw_post(coalition, "/api/v1/transactions/batch", apart), 200)["results"]
    assert [result["status"] for result in results] == [422, 422]  # read, then refused item by item


def without_message(body: dict) -> dict:
    """An error body but for its message, which names what is wrong with each body."""
    return {key: value for key, value in body.items() if key != "message"}


def test_malformed_json_in_a_batch_is_400(coalition):
    assert_error(raw_post(coalition, "/api/v1/transactions/batch", '{"transactions": [}'), 400)


def test_malformed_json_on_settings_is_400_and_changes_nothing(coalition):
    assert_error(coalition.put("/api/v1/settings", data="{ttl", content_type="application/json"), 400)
    assert expect(coalition.get("/api/v1/settings"), 200)["points_ttl_days"] == 365


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/api/v1/transactions", "[" * 100_000 + "]" * 100_000),  # deeper than the parser recurses
        ("/api/v1/transactions/batch", '{"transactions": [' + "[" * 100_000 + "]" * 100_000 + "]}"),
        ("/api/v1/transactions", '{"type": "bonus", "points": ' + "7" * 5000 + "}"),  # past int()'s digit limit
        ("/api/v1/partners", '{"hold_days": ' + "9" * 5000 + "}"),
        ("/api/v1/transactions", '{"type": "earn", "amount": 1e99999999999999999999}'),  # Decimal's Emax
        ("/api/v1/transactions/batch", '{"transactions": [{"amount": 1e-99999999999999999999}]}'),
        ("/api/v1/rates", '{"kind": "fee", "value": 2E99999999999999999999}'),
    ],
    ids=["deep", "deep-in-a-batch", "5000-digit-points", "5000-digit-hold-days", "huge-exponent",
         "huge-negative-exponent-in-a-batch", "huge-exponent-in-a-rate"],
)
def test_json_the_parser_cannot_read_is_400_like_any_malformed_json(coalition, path, text):
    malformed = assert_error(raw_post(coalition, path, "{bad json}"), 400)
    body = assert_error(raw_post(coalition, path, text), 400)
    assert without_message(body) == without_message(malformed)
    # in the service's words, not Python's ("use sys.set_int_max_str_digits()")
    assert body["message"] in {
        "the body cannot be read as JSON: it is nested too deeply to read",
        "the body cannot be read as JSON: a number has more digits than can be read",
        "the body cannot be read as JSON: a number's exponent is too large to read",
    }
    assert list_all(coalition) == []


@pytest.mark.parametrize(
    ("invalid", "why"),
    [(b"\xff", "invalid start byte"), (b"\xc0\xaf", "invalid start byte"),
     (b"\xed\xa0\x80", "invalid continuation byte")],  # the UTF-8 bytes of half a surrogate pair
    ids=["ff", "overlong-slash", "encoded-lone-surrogate"],
)
def test_a_body_that_is_not_utf8_is_malformed_json_whatever_the_bytes(coalition, invalid, why):
    """Every byte sequence UTF-8 does not allow is malformed (400), the encoding of a lone
    surrogate too, which Python's json module would decode and the field refuse (422)."""
    body = json.dumps(earn_body(member_id="m-X")).encode().replace(b"m-X", b"m-" + invalid)
    response = coalition.post("/api/v1/transactions", data=body, content_type="application/json")
    refused = assert_error(response, 400)
    assert refused["message"] == f"the body cannot be read as JSON: it is not UTF-8, UTF-16 or UTF-32 text ({why})"
    assert list_all(coalition) == []


@pytest.mark.parametrize("coding", ["gzip", "br", "GZIP"])
def test_a_body_in_a_content_encoding_is_415_and_posts_nothing(coalition, coding):
    """A coding the service does not undo is refused whether or not it was applied: the
    JSON it would read from a compressed body is not the one the client meant to send."""
    for body in (json.dumps(earn_body()).encode(), gzip.compress(json.dumps(earn_body()).encode())):
        response = coalition.client.post("/api/v1/transactions", data=body, headers={
            **coalition.headers, "Content-Type": "application/json", "Content-Encoding": coding})
        assert (response.status_code, response.get_json()) == (415, {
            "code": 415, "status": "Unsupported Media Type",
            "message": f"a body in Content-Encoding {coding.lower()!r} is not read: send it as is"})
    assert list_all(coalition) == []
    identity = {**coalition.headers, "Content-Type": "application/json", "Content-Encoding": "identity"}
    expect(coalition.client.post("/api/v1/transactions", data=json.dumps(earn_body()), headers=identity))


@pytest.mark.parametrize("text", ["[]", '"earn"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_a_clean_4xx(coalition, text):
    assert_error(raw_post(coalition, "/api/v1/transactions", text))


def test_body_sent_as_form_data_is_a_clean_4xx(coalition):
    response = coalition.post("/api/v1/transactions", data={"type": "earn"})
    assert_error(response)


# --- a JSON body sent empty: 400; not declared as JSON: 415 -----------------------------

#: Every endpoint that reads a JSON body, with a body it would accept from the operator.
JSON_WRITES = [
    ("post", "/api/v1/transactions", earn_body()),
    ("post", "/api/v1/transactions/batch", {"transactions": [earn_body()]}),
    ("post", "/api/v1/partners", {"id": "newco", "name": "New", "category": "shop", "currency": "EUR"}),
    ("patch", "/api/v1/partners/aroma", {"name": "Aroma"}),
    ("put", "/api/v1/settings", {"points_ttl_days": 30}),
    ("post", "/api/v1/rates", {"kind": "redemption", "value": "0.02", "effective_from": days_ago(1)}),
    ("post", "/api/v1/keys", {"role": "finance"}),
]


@pytest.mark.parametrize(("method", "path"), [(method, path) for method, path, _ in JSON_WRITES])
@pytest.mark.parametrize("text", ["[]", '"earn"', "null"])
def test_a_body_that_is_not_an_object_is_told_so(coalition, method, path, text):
    # marshmallow's own words were "Invalid input type."
    response = getattr(coalition.client, method)(path, data=text, headers={
        **coalition.headers, "Content-Type": "application/json"})
    assert assert_error(response, 422)["errors"] == {"json": {"_schema": ["must be a JSON object of fields, {…}"]}}


def test_a_batch_item_that_is_not_an_object_is_told_so_in_its_result(coalition):
    results = expect(raw_post(coalition, "/api/v1/transactions/batch", '{"transactions": [1, []]}'), 200)["results"]
    assert [result["error"]["errors"] for result in results] == [
        {"json": {"_schema": ["must be a JSON object of fields, {…}"]}}] * 2


@pytest.mark.parametrize("points", ["1E2", "100.0", '"100"', "true"])
def test_points_not_written_as_a_whole_number_are_told_how_to_write_it(coalition, points):
    # a JSON number with a fraction or an exponent, a string, a boolean: "Not a valid integer."
    body = json.dumps({"external_id": "b1", "type": "bonus", "partner_id": "coalition", "member_id": "m1",
                       "reason": "goodwill", "occurred_at": days_ago(1), "points": 0})
    response = raw_post(coalition, "/api/v1/transactions", body.replace('"points": 0', f'"points": {points}'))
    assert assert_error(response, 422)["errors"] == {"json": {"points": [
        "must be a whole number: write it in the digits 0-9, with no fraction, exponent or quotes"]}}
    assert list_all(coalition) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/transactions", {k: v for k, v in earn_body().items() if k != "type"}, "type"),
        ("post", "/api/v1/partners", {"id": "zz", "category": "cafe", "currency": "RUB"}, "name"),
        ("post", "/api/v1/transactions/batch", {}, "transactions"),
    ],
    ids=["transaction", "partner", "batch"],
)
def test_a_required_field_left_out_is_told_required(coalition, method, path, body, field):
    # marshmallow's words were "Missing data for required field."
    response = getattr(coalition, method)(path, json=body)
    assert assert_error(response, 422)["errors"] == {"json": {field: ["required"]}}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/transactions", earn_body(external_id=123), "external_id"),
        ("post", "/api/v1/transactions", earn_body(type=["earn"]), "type"),
        ("post", "/api/v1/partners", {"id": "zz", "name": "Z", "category": "cafe", "currency": 643}, "currency"),
        ("patch", "/api/v1/partners/aroma", {"name": 7}, "name"),
    ],
    ids=["external_id", "type", "currency", "patched-name"],
)
def test_a_text_field_sent_as_another_json_type_is_told_it_must_be_a_string(coalition, method, path, body, field):
    # a till that sends its receipt number as a JSON number read "Not a valid string."
    response = getattr(coalition, method)(path, json=body)
    assert assert_error(response, 422)["errors"] == {"json": {field: ["must be a JSON string"]}}


@pytest.mark.parametrize(
    ("method", "path", "body", "location", "field", "said"),
    [
        ("post", "/api/v1/partners", {"id": "zz", "name": "Z", "category": "bar", "currency": "RUB"}, "json",
         "category", "must be one of shop, cafe, gym, travel, other"),
        ("put", "/api/v1/settings", {"period": "yearly"}, "json", "period", "must be one of monthly, weekly, daily"),
        ("get", "/api/v1/rates?kind=earning", None, "query", "kind",
         "must be one of earn, promo, threshold, redemption, fee, fx"),
    ],
    ids=["category", "period", "rate-kind"],
)
def test_a_value_not_among_a_fields_few_is_told_them_in_the_house_words(coalition, method, path, body, location,
                                                                        field, said):
    # marshmallow's were "Must be one of: shop, cafe, gym, travel, other.", where a transaction's
    # type already said "must be one of earn, bonus, …"
    response = getattr(coalition, method)(path, **({} if body is None else {"json": body}))
    assert assert_error(response, 422)["errors"] == {location: {field: [said]}}


def test_a_field_a_body_does_not_take_is_told_which_it_takes(coalition):
    # "Unknown field." left the operator to find that the setting is points_ttl_days
    response = coalition.put("/api/v1/settings", json={"ttl_days": 30})
    assert assert_error(response, 422)["errors"] == {"json": {"ttl_days": [
        "not a field of this body, which takes base_currency, timezone, period, points_ttl_days,"
        " max_backdate_days, auto_close_after_hours"]}}


@pytest.mark.parametrize(
    ("transactions", "said"),
    [
        ({"external_id": "t1"}, "must be a JSON array of transactions"),
        ([], "must hold 1 to 1000 transactions: send more in several batches"),
        ([earn_body()] * 1001, "must hold 1 to 1000 transactions: send more in several batches"),
    ],
    ids=["an-object", "none", "1001"],
)
def test_a_batch_that_is_no_list_of_1_to_1000_is_told_what_to_send(coalition, transactions, said):
    # marshmallow's words were "Not a valid list." and "Length must be between 1 and 1000."
    response = coalition.post("/api/v1/transactions/batch", json={"transactions": transactions})
    assert assert_error(response, 422)["errors"] == {"json": {"transactions": [said]}}


@pytest.mark.parametrize(
    ("method", "path", "body", "location", "field", "said"),
    [
        # marshmallow's words were "Must be greater than or equal to 1 and less than or equal to
        # 1000000000000.", "Must be greater than 0 and …", "Length must be between 1 and 64." and so on
        ("post", "/api/v1/transactions", {"external_id": "b1", "type": "bonus", "partner_id": "coalition",
         "member_id": "m1", "reason": "goodwill", "occurred_at": days_ago(1), "points": 0}, "json", "points",
         "must be at least 1 and at most 1000000000000"),
        ("post", "/api/v1/transactions", earn_body(amount="0.00"), "json", "amount",
         "must be more than 0 and at most 1000000000000000"),
        ("patch", "/api/v1/partners/aroma", {"hold_days": 3651}, "json", "hold_days", "must be at least 0 and at most 3650"),
        ("put", "/api/v1/settings", {"timezone": "x" * 65}, "json", "timezone", "must be 1 to 64 characters"),
        ("post", "/api/v1/partners", {"id": "zz", "name": "x" * 201, "category": "cafe", "currency": "RUB"}, "json",
         "name", "must be 1 to 200 characters"),
        ("get", "/api/v1/transactions?limit=0", None, "query", "limit", "must be at least 1 and at most 1000"),
        ("get", f"/api/v1/transactions?member_id={'m' * 129}", None, "query", "member_id", "must be 1 to 128 characters"),
    ],
    ids=["points", "amount", "hold_days", "timezone", "name", "limit", "member_id"],
)
def test_a_value_out_of_its_bounds_is_told_them_in_the_house_words(coalition, method, path, body, location, field,
                                                                   said):
    response = getattr(coalition, method)(path, **({} if body is None else {"json": body}))
    assert assert_error(response, 422)["errors"] == {location: {field: [said]}}
    assert list_all(coalition) == []


def _request_schemas(app):
    """Every schema an operation reads its body or its query with."""
    for view in app.view_functions.values():
        for method in vars(getattr(view, "view_class", object)).values():
            for argument in getattr(method, "_apidoc", {}).get("arguments", {}).get("parameters", []):
                yield argument["schema"]() if isinstance(argument["schema"], type) else argument["schema"]


def _outside(bound):
    """A value on each side of a bound's range that lies outside it."""
    if isinstance(bound, validate.Range):
        return ([] if bound.min is None else [bound.min - 1]) + ([] if bound.max is None else [bound.max + 1])
    return ([] if bound.max is None else ["x" * (bound.max + 1)]) + ([""] if bound.min else [])


def test_every_bound_of_a_request_field_is_told_in_the_house_words_naming_it(app):
    """A Range or Length of marshmallow's own words anywhere a request is read (a body, a
    query) reached users as "Must be greater than or equal to …." beside the house's
    "must be one of …"; each is told as "must be …", naming its bounds."""
    told = {}
    for schema in _request_schemas(app):
        for name, field in schema.load_fields.items():
            for bound in field.validators:
                if not isinstance(bound, validate.Range | validate.Length) or bound.error is not None:
                    continue  # a bound told in its own words (a batch's, a cursor's)
                for value in _outside(bound):
                    with pytest.raises(ValidationError) as refused:
                        bound(value)
                    told[f"{type(schema).__name__}.{name} {value!r:.8}"] = said = refused.value.messages[0]
                    assert all(str(limit) in said for limit in (bound.min, bound.max) if limit is not None), said
    assert len(told) > 30  # every schema was read
    assert {where: said for where, said in told.items() if not re.fullmatch("must be [^A-Z]*[^.]", said)} == {}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/transactions", earn_body(occurred_at=1764547200), "occurred_at"),
    ("/api/v1/transactions", earn_body(occurred_at=True), "occurred_at"),
    ("/api/v1/rates", {"kind": "redemption", "value": "0.02", "effective_from": {}}, "effective_from"),
], ids=["a-number", "true", "an-object"])
def test_an_instant_sent_as_no_string_is_told_to_send_one(coalition, path, body, field):
    # marshmallow's words were "Not a valid datetime."
    assert assert_error(coalition.post(path, json=body), 422)["errors"] == {"json": {field: [
        "must be a JSON string: an RFC 3339 instant with its offset, e.g. 2026-10-03T10:15:00+03:00"]}}


@pytest.mark.parametrize(("field", "value"), [("points_ttl_days", 30.0), ("max_backdate_days", "30"),
                                              ("auto_close_after_hours", True)])
def test_a_setting_not_written_as_a_whole_number_is_told_how_to_write_it(coalition, field, value):
    response = coalition.put("/api/v1/settings", json={field: value})
    assert assert_error(response, 422)["errors"] == {"json": {field: [
        "must be a whole number: write it in the digits 0-9, with no fraction, exponent or quotes"]}}


@pytest.mark.parametrize(("method", "path"), [(method, path) for method, path, _ in JSON_WRITES])
def test_an_empty_body_declared_as_json_is_malformed_json(coalition, method, path):
    """An empty string is no JSON text (RFC 8259): 400, as any malformed JSON, not read
    as a body without fields (422 for each one missing)."""
    malformed = assert_error(getattr(coalition, method)(path, data="{bad json}", content_type="application/json"), 400)
    for empty in (b"", b" \r\n", b"\xef\xbb\xbf", b"\xff\xfe", b"\xef\xbb\xbf \n"):  # a byte order mark is no text
        response = getattr(coalition, method)(path, data=empty, content_type="application/json")
        body = assert_error(response, 400)
        assert without_message(body) == without_message(malformed)
        assert body["message"] == "the body cannot be read as JSON: it is empty"
    assert list_all(coalition) == []


@pytest.mark.parametrize("content_type", [None, "text/plain"])
@pytest.mark.parametrize(("method", "path", "body"), JSON_WRITES, ids=[f"{m} {p}" for m, p, _ in JSON_WRITES])
def test_a_json_body_not_sent_as_json_is_415(coalition, method, path, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = getattr(coalition.client, method)(path, data=json.dumps(body), headers={**coalition.headers, **headers})
    assert (response.status_code, response.get_json()) == (
        415, {"code": 415, "status": "Unsupported Media Type", "message": "send the body as application/json"})


def test_a_body_refused_as_not_json_writes_nothing(coalition):
    coalition.post("/api/v1/transactions", data=json.dumps(earn_body()), content_type="text/plain")
    assert list_all(coalition) == []


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.coalition+json"])
def test_any_json_media_type_is_read_as_json(coalition, content_type):
    expect(coalition.post("/api/v1/transactions", data=json.dumps(earn_body()), content_type=content_type))


# --- invalid fields: 422 with "errors" ---------------------------------------------------


def test_invalid_fields_are_422_with_errors_naming_the_field(coalition):
    body = assert_error(coalition.post("/api/v1/transactions", json=earn_body(type="refund")), 422)
    assert "errors" in body
    assert "type" in str(body["errors"])


def test_missing_required_fields_are_422_with_errors(coalition):
    body = assert_error(coalition.post("/api/v1/transactions", json={"type": "earn"}), 422)
    assert "external_id" in str(body["errors"])
    assert "occurred_at" in str(body["errors"])


def test_earn_without_amount_is_422_naming_amount(coalition):
    body = earn_body()
    del body["amount"]
    response = assert_error(coalition.post("/api/v1/transactions", json=body), 422)
    assert "amount" in str(response["errors"])


def test_earn_without_currency_is_422_naming_currency(coalition):
    """SPEC §6 lists currency among an earn's fields (category alone is optional): a till
    that does not say what it was paid in is not guessed for."""
    body = earn_body()
    del body["currency"]
    response = assert_error(coalition.post("/api/v1/transactions", json=body), 422)
    assert response["errors"] == {"json": {"currency": ["required for this type"]}}
    assert coalition.get("/api/v1/transactions").get_json()["items"] == []


def test_one_answer_names_every_field_to_fix(coalition):
    # a malformed instant and an earn's missing amount and currency: all three at once
    body = {"external_id": "t1", "type": "earn", "member_id": "m1", "occurred_at": "yesterday"}
    errors = assert_error(coalition.post("/api/v1/transactions", json=body), 422)["errors"]["json"]
    assert sorted(errors) == ["amount", "currency", "occurred_at"]
    assert errors["amount"] == errors["currency"] == ["required for this type"]
    assert coalition.get("/api/v1/transactions").get_json()["items"] == []


def test_a_field_refused_for_its_value_is_not_also_called_missing(coalition):
    refused = earn_body(amount="abc", currency=None)  # a null is left out: the currency is missing
    errors = assert_error(coalition.post("/api/v1/transactions", json=refused), 422)["errors"]["json"]
    assert sorted(errors) == ["amount", "currency"]
    assert "required for this type" not in errors["amount"]
    assert errors["currency"] == ["required for this type"]


def test_a_field_the_type_refuses_is_named_beside_a_field_refused_for_its_value(coalition):
    burn_with_amount = {"external_id": "t2", "type": "burn", "member_id": "m1", "points": "many",
                        "amount": "1.00", "occurred_at": days_ago(1)}
    errors = assert_error(coalition.post("/api/v1/transactions", json=burn_with_amount), 422)["errors"]["json"]
    assert errors["amount"] == ["not allowed for this type"] and "points" in errors


@pytest.mark.parametrize(
    "body",
    [
        {"type": "bonus", "member_id": "m1", "points": 5, "reason": "goodwill", "partner_id": "coalition"},
        {"type": "burn", "member_id": "m1", "points": 5},
        {"type": "earn_reversal", "original_external_id": "e1", "points": 5},
        {"type": "burn_reversal", "original_external_id": "b1"},
    ],
    ids=lambda body: body["type"],
)
def test_a_category_is_an_earns_alone_and_refused_on_any_other_type(coalition, body):
    """SPEC §6 gives a category to earns, where it picks the rates; on a burn it would be
    stored and echoed, and a till would take it to have mattered."""
    expect(earn(coalition, "e1", "m1", "100.00"))
    expect(burn(coalition, "b1", "m1", 5))
    before = list_all(coalition)
    posted = {"external_id": "t9", "occurred_at": days_ago(1), **body, "category": "coffee"}
    errors = assert_error(coalition.post("/api/v1/transactions", json=posted), 422)["errors"]["json"]
    assert errors == {"category": ["not allowed for this type"]}
    assert list_all(coalition) == before


def test_a_leap_second_is_422_saying_which_second_to_send_instead(coalition):
    body = earn_body(occurred_at=days_ago(1)[:11] + "23:59:60Z")
    errors = assert_error(coalition.post("/api/v1/transactions", json=body), 422)["errors"]["json"]
    assert errors == {
        "occurred_at": [
            "a leap second (:60) is no instant that can be stored;"
            " send the second before it, e.g. 23:59:59.999999Z"
        ]
    }
    assert coalition.get("/api/v1/transactions").get_json()["items"] == []


@pytest.mark.parametrize("offset", ["+03:99", "+03:60", "-00:75", "+24:00", "+99:00"])
def test_an_offset_rfc_3339_does_not_write_is_422_not_moved(coalition, offset):
    # Python read +03:99 as +04:39 and -00:75 as -01:15: the posting moved by up to 40 minutes,
    # maybe into another period; RFC 3339's offsets run to 23:59
    written = days_ago(1)[:19] + offset
    body = earn_body(occurred_at=written)
    errors = assert_error(coalition.post("/api/v1/transactions", json=body), 422)["errors"]["json"]
    assert errors == {"occurred_at": [f"{written!r} has no such offset: its hours run 00 to 23, its minutes 00 to 59"]}
    listed = coalition.get("/api/v1/transactions", query_string={"from": written})
    assert assert_error(listed, 422)["errors"]["query"]["from"] == errors["occurred_at"]
    assert coalition.get("/api/v1/transactions").get_json()["items"] == []


@pytest.mark.parametrize("written", ["2026-02-29T10:00:00Z", "2026-13-01T10:00:00Z", "2026-10-03T24:00:00Z",
                                     "2026-10-03T10:60:00Z"])
def test_a_date_or_time_the_calendar_has_not_is_422_saying_so(coalition, written):
    errors = assert_error(coalition.post("/api/v1/transactions", json=earn_body(occurred_at=written)), 422)
    assert errors["errors"]["json"]["occurred_at"] == [
        f"{written!r} is no date and time of the calendar: months run 01 to 12,"
        " days to the month's last, hours 00 to 23, minutes and seconds 00 to 59"
    ]


def test_an_offset_of_23_59_is_read(coalition):
    # the edge of what RFC 3339 writes: 10:00 at -23:59 is 09:59 the next day in UTC
    day = days_ago(2)[:10]
    posted = coalition.post("/api/v1/transactions", json=earn_body(occurred_at=f"{day}T10:00:00-23:59"))
    assert posted.status_code == 201, posted.get_json()
    assert posted.get_json()["occurred_at"] == f"{(datetime.fromisoformat(day) + timedelta(days=1)).date()}T09:59:00+00:00"


def test_an_optional_field_sent_as_null_is_left_out(coalition):
    # a typed client writes every field it declares, null where unset
    nulls = {"points": None, "reason": None, "original_external_id": None}
    when = days_ago(3)  # one instant for all three: a second apart, the replay would be a conflict
    posted = expect(coalition.post("/api/v1/transactions",
                                   json=earn_body(occurred_at=when, category=None, **nulls)), 201)
    assert (posted["points"], posted["category"], posted["reason"]) == (10, None, None)  # 100.00 RUB × 0.1
    replayed = expect(coalition.post("/api/v1/transactions", json=earn_body(occurred_at=when)), 200)  # the same body
    assert replayed["id"] == posted["id"]
    conflict = assert_error(coalition.post("/api/v1/transactions",
                                           json=earn_body(occurred_at=when, category="coffee")), 409)
    assert conflict["message"].endswith("changed: category")
    burn_with_null = {"external_id": "t3", "type": "burn", "member_id": "m1", "points": 5,
                      "amount": None, "category": None, "partner_id": "aroma", "occurred_at": days_ago(1)}
    assert expect(coalition.post("/api/v1/transactions", json=burn_with_null), 201)["points"] == -5
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": [
        {**burn_with_null, "external_id": "t4", "currency": None}]}), 200)["results"]
    assert (results[0]["status"], results[0]["transaction"]["points"]) == (201, -5)


def test_the_openapi_document_says_an_optional_body_field_may_be_sent_as_null(client):
    """What the test above sends, the document says: a typed client generated from it
    writes null only where a field is nullable; a required field is not."""
    schemas = expect(client.get("/api/openapi.json"), 200)["components"]["schemas"]
    for name in ("TransactionIn", "Partner"):
        fields = schemas[name]["properties"]
        nullable = {field for field, schema in fields.items() if schema.get("nullable")}
        assert nullable == set(fields) - set(schemas[name]["required"]), name
    assert {"reason", "points", "currency"} <= {field for field, schema in schemas["TransactionIn"]["properties"].items()
                                                if schema.get("nullable")}


def test_a_null_is_refused_where_a_value_is_needed(coalition):
    errors = assert_error(coalition.post("/api/v1/transactions", json=earn_body(amount=None)), 422)["errors"]["json"]
    assert errors == {"amount": ["required for this type"]}
    a_return = {"external_id": "t4", "type": "earn_reversal", "original_external_id": "t0", "partner_id": "aroma",
                "points": None, "amount": None, "occurred_at": days_ago(1)}
    errors = assert_error(coalition.post("/api/v1/transactions", json=a_return), 422)["errors"]["json"]
    assert errors == {"amount": ["give exactly one of amount or points"]}
    errors = assert_error(coalition.post("/api/v1/transactions", json=earn_body(external_id=None)), 422)["errors"]["json"]
    assert errors == {"external_id": ["must not be null"]}
    errors = assert_error(coalition.post("/api/v1/transactions", json=earn_body(note=None)), 422)["errors"]["json"]
    assert errors == {"note": ["not a field of this body, which takes external_id, type, partner_id, member_id,"
                               " occurred_at, amount, currency, category, points, reason, original_external_id"]}
    body = assert_error(coalition.post("/api/v1/transactions", json=earn_body(partner_id=None)), 422)
    assert body["reason"] == "missing_partner"


def test_domain_errors_carry_a_reason(coalition):
    body = assert_error(burn(coalition, "t1", "nobody", 5), 422)
    assert body["reason"] == "insufficient_points"


def test_unknown_partner_in_a_transaction_is_422(coalition):
    assert_error(coalition.post("/api/v1/transactions", json=earn_body(partner_id="nobody")), 422)


RATE = {"kind": "earn", "value": "1", "partner_id": "aroma", "effective_from": days_ago(30)}
FUTURE = "2999-01-01T00:00:00+00:00"

# (method, path, body, the field named, reason): a rule broken by one field's value alone
ONE_FIELD_RULES = [
    ("post", "/api/v1/transactions", earn_body(amount="100.001"), "amount", "invalid"),
    ("post", "/api/v1/transactions", earn_body(amount="0.01"), "amount", "zero_points"),  # × 0.1 = 0.001
    ("post", "/api/v1/transactions", earn_body(occurred_at=FUTURE), "occurred_at", "occurred_in_future"),
    ("post", "/api/v1/transactions", earn_body(occurred_at=days_ago(91)), "occurred_at", "too_old"),
    ("post", "/api/v1/transactions", earn_body(currency="EUR"), "currency", "wrong_currency"),
    ("post", "/api/v1/transactions", earn_body(partner_id="nobody"), "partner_id", "unknown_partner"),
    ("post", "/api/v1/transactions", {**earn_body(type="earn_reversal", original_external_id="nothing"),
                                      "member_id": "m1"}, "original_external_id", "unknown_original"),
    ("post", "/api/v1/rates", {**RATE, "kind": "promo", "value": "2"}, "effective_to", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "effective_to": days_ago(31)}, "effective_to", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "kind": "threshold", "value": "50"}, "min_amount", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "kind": "threshold", "value": "0.5", "min_amount": "100.00"},
     "value", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "min_amount": "100.00"}, "min_amount", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "kind": "threshold", "value": "5", "min_amount": "100.001"},
     "min_amount", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "kind": "fee", "category": "coffee"}, "category", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "value": "0"}, "value", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "partner_id": None, "kind": "fx", "currency": "ABC"}, "currency", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "kind": "fx", "currency": "RUB"}, "partner_id", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "partner_id": None, "kind": "fx", "currency": "EUR"}, "currency", "invalid"),
    ("post", "/api/v1/rates", {**RATE, "partner_id": "nobody"}, "partner_id", "unknown_partner"),
    ("put", "/api/v1/settings", {"timezone": "Mars/Olympus_Mons"}, "timezone", "invalid"),
    ("put", "/api/v1/settings", {"base_currency": "ABC"}, "base_currency", "invalid"),
    ("post", "/api/v1/keys", {"role": "partner"}, "partner_id", "invalid"),
    ("post", "/api/v1/partners", {"id": "gym", "name": "Gym", "category": "gym", "currency": "ABC"},
     "currency", "invalid"),
]


@pytest.mark.parametrize(("method", "path", "body", "field", "reason"), ONE_FIELD_RULES,
                         ids=[f"{path.rsplit('/', 1)[1]}-{field}-{reason}" for _, path, _, field, reason in ONE_FIELD_RULES])
def test_a_rule_broken_by_one_fields_value_names_that_field_under_errors(coalition, method, path, body, field,
                                                                          reason):
    # SPEC §10: "errors" for field validation, "reason" for domain errors; one field's value
    # breaking a rule is both, named as the schema names the fields it refuses
    response = assert_error(getattr(coalition, method)(path, json=body), 422)
    assert response["reason"] == reason
    assert response["errors"] == {"json": {field: [response["message"]]}}


@pytest.mark.parametrize(("changes", "field", "reason"), [
    ({"member_id": "m2"}, "member_id", "wrong_member"),
    ({"occurred_at": days_ago(4)}, "occurred_at", "before_original"),
])
def test_a_reversal_at_odds_with_its_original_names_the_field(coalition, changes, field, reason):
    expect(coalition.post("/api/v1/transactions", json=earn_body()))  # t1 for m1, 3 days ago
    body = {**earn_body(external_id="r1", type="earn_reversal", original_external_id="t1"), **changes}
    response = assert_error(coalition.post("/api/v1/transactions", json=body), 422)
    assert (response["reason"], response["errors"]) == (reason, {"json": {field: [response["message"]]}})


def test_a_rule_broken_by_no_one_field_carries_a_reason_and_no_errors(coalition):
    response = assert_error(burn(coalition, "t1", "nobody", 5), 422)
    assert (response["reason"], "errors" in response) == ("insufficient_points", False)


# --- hostile values: clean 4xx, never 500 -------------------------------------------------

BAD_AMOUNTS = ["NaN", "nan", "Infinity", "-Infinity", "inf", "sNaN", "-100.00", "0", "0.00", "1e400",
               "1" + "0" * 30, "12abc", "", " ", "1,000.00", None, True, [], {},
               # not written as the documented pattern ^[0-9]{1,16}(\.[0-9]{1,12})?$, though Decimal reads them
               "3.5E2", "350e0", " 350", "350 ", "350\n", "350.", ".5", "+350", "1_000", "\u0663\u0665\u0660"]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_bad_amounts_are_422(coalition, amount):
    assert_error(coalition.post("/api/v1/transactions", json=earn_body(amount=amount)), 422)
    assert list_all(coalition) == []


# An exponent Decimal holds but no string could write out in full (1e99999999999 has
# 10^11 digits) is refused as written, never expanded: that took a worker's memory or time.
HUGE_EXPONENTS = ["1e99999999999", "1E+400000000000", "10.5e99999999999", "1e-99999999999"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 30, "-5",
                                     "3.5E2", "350e0", "35000E-2", "-0", "350.0000000000001", *HUGE_EXPONENTS])
def test_bare_json_number_literals_as_amount_are_a_clean_4xx(coalition, literal):
    text = (
        '{"external_id": "t1", "type": "earn", "partner_id": "aroma", "member_id": "m1", '
        f'"occurred_at": "{days_ago(3)}", "amount": {literal}, "currency": "RUB"}}'
    )
    assert_error(raw_post(coalition, "/api/v1/transactions", text))
    assert list_all(coalition) == []


@pytest.mark.parametrize("literal", ["350", "350.00", "0.5"])
def test_a_json_number_for_an_amount_is_422_asking_for_a_string(coalition, literal):
    """SPEC §3: money in JSON is a string such as "350.00"; a number, however written, is
    what a client held as a float (0.1 + 0.2 goes as 0.30000000000000004). Read into
    Decimal, 350.00 was posted as "350.00", which the document never said it would be."""
    text = (
        '{"external_id": "t1", "type": "earn", "partner_id": "skyair", "member_id": "m1", '
        f'"occurred_at": "{days_ago(3)}", "amount": {literal}, "currency": "EUR"}}'
    )
    body = assert_error(raw_post(coalition, "/api/v1/transactions", text), 422)
    assert body["errors"]["json"]["amount"] == [
        'must be a string such as "350.00": money and rates travel as decimal strings,'
        " never as JSON numbers"
    ]
    assert list_all(coalition) == []


@pytest.mark.parametrize(
    ("rate", "field"),
    [
        ({"kind": "fee", "value": 0.001}, "value"),
        ({"kind": "threshold", "value": "50", "partner_id": "aroma", "min_amount": 1000}, "min_amount"),
    ],
    ids=["value", "min_amount"],
)
def test_a_json_number_for_a_rate_is_422_and_adds_no_rate(coalition, rate, field):
    before = expect(coalition.get("/api/v1/rates"), 200)
    body = assert_error(coalition.post("/api/v1/rates", json={**rate, "effective_from": days_ago(1)}), 422)
    assert list(body["errors"]["json"]) == [field]
    assert expect(coalition.get("/api/v1/rates"), 200) == before


@pytest.mark.parametrize("literal", ["true", "[350]", '{"value": "350.00"}'])
def test_an_amount_that_is_no_number_is_asked_for_as_a_string_not_told_it_is_a_number(coalition, literal):
    # a till that sent true or a list is told what to send, not that it sent a JSON number
    text = (
        '{"external_id": "t1", "type": "earn", "partner_id": "skyair", "member_id": "m1", '
        f'"occurred_at": "{days_ago(3)}", "amount": {literal}, "currency": "EUR"}}'
    )
    body = assert_error(raw_post(coalition, "/api/v1/transactions", text), 422)
    assert body["errors"]["json"]["amount"] == ['must be a string such as "350.00"']
    assert list_all(coalition) == []


def test_a_batch_item_with_a_json_number_for_its_amount_is_its_own_422(coalition):
    items = [earn_body(external_id="t1"), {**earn_body(external_id="t2"), "amount": 350}]
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [201, 422]
    assert list(results[1]["error"]["errors"]["json"]) == ["amount"]
    assert [t["external_id"] for t in list_all(coalition)] == ["t1"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1.5", "-3", "0", "1e3", str(10**30)])
def test_bare_json_number_literals_as_points_are_a_clean_4xx(coalition, literal):
    text = (
        '{"external_id": "b1", "type": "bonus", "partner_id": "coalition", "member_id": "m1", '
        f'"occurred_at": "{days_ago(3)}", "points": {literal}, "reason": "r"}}'
    )
    assert_error(raw_post(coalition, "/api/v1/transactions", text))
    assert list_all(coalition) == []


@pytest.mark.parametrize("points", [-1, 0, 1.5, "1.5", "NaN", 10**30, 2**63, -(2**63), "10", None, [5]], ids=repr)
def test_bad_bonus_points_are_422(coalition, points):
    assert_error(bonus(coalition, "b1", "m1", points), 422)
    assert coalition.get("/api/v1/members/m1/balance").status_code == 404


def test_earn_with_an_amount_so_large_its_points_overflow_is_a_clean_4xx(coalition):
    # 10**15 RUB (the largest amount accepted) × 0.1 = 10**14 points; with an earn rate of 10**9
    # points per RUB it would be 10**24 points: more than any integer column holds
    expect(coalition.post("/api/v1/rates", json={"kind": "earn", "value": "1000000000", "partner_id": "aroma",
                                                 "effective_from": days_ago(1), "category": "gold"}))
    assert_error(earn(coalition, "t1", "m1", "1000000000000000", category="gold"))
    assert coalition.get("/api/v1/members/m1/balance").status_code == 404


@pytest.mark.parametrize(
    "field",
    ["external_id", "member_id", "category", "currency"],
)
def test_strings_with_nul_characters_are_422(coalition, field):
    value = "abc\x00def"
    assert_error(coalition.post("/api/v1/transactions", json=earn_body(**{field: value})), 422)
    assert list_all(coalition) == []


@pytest.mark.parametrize("field", ["external_id", "member_id", "category"])
def test_strings_with_a_lone_surrogate_are_422(coalition, field):
    # JSON may escape half a surrogate pair; UTF-8, and so the database, cannot hold it
    text = json.dumps(earn_body(**{field: "HALF"})).replace('"HALF"', '"a\\ud800b"')
    assert "errors" in assert_error(raw_post(coalition, "/api/v1/transactions", text), 422)
    assert list_all(coalition) == []


def test_a_lone_surrogate_in_a_batch_is_that_items_422(coalition):
    text = json.dumps({"transactions": [earn_body(external_id="t1"), earn_body(external_id="HALF")]})
    text = text.replace('"HALF"', '"\\udfff"')
    results = expect(raw_post(coalition, "/api/v1/transactions/batch", text), 200)["results"]
    assert [result["status"] for result in results] == [201, 422]


def test_an_amount_with_a_huge_exponent_in_a_batch_is_that_items_422(coalition):
    text = json.dumps({"transactions": [earn_body(external_id="t1"), earn_body(external_id="t2", amount="HUGE")]})
    text = text.replace('"HUGE"', HUGE_EXPONENTS[0])
    results = expect(raw_post(coalition, "/api/v1/transactions/batch", text), 200)["results"]
    assert [result["status"] for result in results] == [201, 422]
    assert "amount" in results[1]["error"]["errors"]["json"]


def test_bonus_reason_with_a_nul_character_is_422(coalition):
    assert_error(bonus(coalition, "b1", "m1", 10, reason="gift\x00"), 422)


def test_reversal_original_external_id_with_a_nul_character_is_422(coalition):
    assert_error(burn_reversal(coalition, "u1", "t\x001"), 422)


def test_partner_name_with_a_nul_character_is_422(coalition):
    response = coalition.post("/api/v1/partners", json={"id": "nul", "name": "A\x00B", "category": "cafe", "currency": "RUB"})
    assert_error(response, 422)


def test_nul_character_in_a_query_parameter_is_a_clean_4xx_or_no_match(coalition):
    response = coalition.get("/api/v1/transactions", query_string={"member_id": "m\x001"})
    if response.status_code == 200:
        assert response.get_json()["items"] == []
    else:
        assert_error(response)


@pytest.mark.parametrize(
    ("path", "query"),
    [("/api/v1/members/\xff/balance", ""), ("/api/v1/members/\xfe/balance", ""),
     ("/api/v1/members/caf\xe9/history", ""),  # "café" percent-encoded in Latin-1
     ("/api/v1/transactions", "member_id=%FF"), ("/healthz", "x=%C3")],
)
def test_a_url_whose_percent_encoded_bytes_are_not_utf8_is_400(coalition, path, query):
    """The path as a WSGI server hands ``%FF`` on (one byte, read as Latin-1; werkzeug's
    test client would have replaced it already). werkzeug decodes it as U+FFFD, so %FF and
    %FE were both the member "\ufffd", whose balance this answered."""
    expect(coalition.post("/api/v1/transactions", json=earn_body(member_id="\ufffd")))
    response = coalition.client.get(
        "/", headers=coalition.headers, environ_overrides={"PATH_INFO": path, "QUERY_STRING": query})
    body = assert_error(response, 400)
    assert body["message"] == "the URL is not UTF-8 once percent-decoded: encode text as UTF-8"
    found = coalition.client.get("/", headers=coalition.headers, environ_overrides={
        "PATH_INFO": "/api/v1/members/\xef\xbf\xbd/balance"})  # U+FFFD, sent as its UTF-8
    assert (found.status_code, found.get_json()["available"]) == (200, 10)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/members/m%001/balance"),
        ("get", "/api/v1/members/m%001/history"),
        ("get", "/api/v1/partners/aro%00ma"),
        ("patch", "/api/v1/partners/aro%00ma"),
        ("delete", "/api/v1/keys/key_%00"),
    ],
)
def test_nul_character_in_a_path_is_a_clean_4xx(coalition, method, path):
    kwargs = {"json": {"status": "suspended"}} if method == "patch" else {}
    assert_error(getattr(coalition, method)(path, **kwargs))


@pytest.mark.parametrize("field,length", [("external_id", 129), ("member_id", 129), ("category", 65)])
def test_overlong_strings_are_422(coalition, field, length):
    assert_error(coalition.post("/api/v1/transactions", json=earn_body(**{field: "x" * length})), 422)


def test_very_long_member_path_is_a_clean_4xx(coalition):
    assert_error(coalition.get("/api/v1/members/" + "m" * 10000 + "/balance"))


SQLISH = ["'; DROP TABLE transactions; --", "1' OR '1'='1", "\"; DELETE FROM lots; --", "m1) UNION SELECT key_hash FROM api_keys --"]


@pytest.mark.parametrize("member_id", SQLISH)
def test_sql_like_member_ids_are_just_opaque_identifiers(coalition, member_id):
    # member_id is opaque: the earn is stored as given and nothing else is touched
    expect(earn(coalition, "t1", member_id, "1000.00"))  # 100 points
    expect(earn(coalition, "t2", "m-other", "500.00"))  # 50 points
    page = expect(coalition.get("/api/v1/transactions", query_string={"member_id": member_id}), 200)
    assert [item["member_id"] for item in page["items"]] == [member_id]
    assert balance(coalition, "m-other")["available"] == 50
    assert len(list_all(coalition)) == 2


@pytest.mark.parametrize("value", SQLISH)
def test_sql_like_partner_ids_are_422(coalition, value):
    assert_error(coalition.post("/api/v1/transactions", json=earn_body(partner_id=value)), 422)


@pytest.mark.parametrize("value", SQLISH)
def test_sql_like_query_parameters_find_nothing(coalition, value):
    expect(earn(coalition, "t1", "m1", "1000.00"))
    page = expect(coalition.get("/api/v1/transactions", query_string={"member_id": value}), 200)
    assert page["items"] == []


@pytest.mark.parametrize("value", SQLISH)
def test_sql_like_period_id_is_a_clean_answer(coalition, value):
    response = coalition.get("/api/v1/transactions", query_string={"period_id": value})
    if response.status_code == 200:
        assert response.get_json()["items"] == []
    else:
        assert_error(response)


def test_sql_like_member_path_is_404(coalition):
    assert_error(coalition.get("/api/v1/members/1'%20OR%20'1'%3D'1/balance"), 404)


def test_sql_like_partner_path_is_404(coalition):
    assert_error(coalition.get("/api/v1/partners/aroma'%20OR%20'1'%3D'1"), 404)


@pytest.mark.parametrize(
    "transaction_id", ["abc", "-1", "0", str(2**31), str(2**63), "99999999999999999999999"]
)
def test_malformed_or_huge_transaction_ids_are_404(coalition, transaction_id):
    assert_error(coalition.get(f"/api/v1/transactions/{transaction_id}"), 404)


@pytest.mark.parametrize("digits", ["٠١٢٣٤٥٦٧٨٩", "０１２３４５６７８９", "߀߁߂߃߄߅߆߇߈߉"], ids=["arabic-indic", "fullwidth", "nko"])
def test_an_id_written_in_another_scripts_digits_is_404_not_the_transaction(coalition, digits):
    # int() reads "١" as 1: only ASCII digits name a transaction
    transaction_id = str(expect(earn(coalition, "t1", "m1", "1000.00"))["id"])
    assert coalition.get(f"/api/v1/transactions/{transaction_id}").status_code == 200
    assert_error(coalition.get(f"/api/v1/transactions/{transaction_id.translate(str.maketrans('0123456789', digits))}"), 404)

@pytest.mark.parametrize("cursor", [str(2**31), str(2**63), "9" * 32])
def test_huge_cursor_on_transactions_is_a_clean_answer(coalition, cursor):
    expect(earn(coalition, "t1", "m1", "1000.00"))
    response = coalition.get("/api/v1/transactions", query_string={"cursor": cursor})
    if response.status_code == 200:
        assert response.get_json()["items"] == []
    else:
        assert_error(response)


@pytest.mark.parametrize("cursor", [str(2**31), str(2**63), "9" * 32])
def test_huge_cursor_on_member_history_is_a_clean_answer(coalition, cursor):
    expect(earn(coalition, "t1", "m1", "1000.00"))
    response = coalition.get("/api/v1/members/m1/history", query_string={"cursor": cursor})
    if response.status_code == 200:
        assert response.get_json()["items"] == []
    else:
        assert_error(response)


def test_non_numeric_cursor_on_member_history_is_a_clean_4xx(coalition):
    expect(earn(coalition, "t1", "m1", "1000.00"))
    assert_error(coalition.get("/api/v1/members/m1/history", query_string={"cursor": "abc"}))


# Instants with an offset whose UTC form falls before year 1 or after year 9999
UNREPRESENTABLE = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("instant", UNREPRESENTABLE)
def test_occurred_at_with_no_utc_form_is_422(coalition, instant):
    body = assert_error(coalition.post("/api/v1/transactions", json=earn_body(occurred_at=instant)), 422)
    assert body["errors"]["json"] == {"occurred_at": ["must be an instant between years 1 and 9999 in UTC"]}
    assert list_all(coalition) == []


@pytest.mark.parametrize("instant", UNREPRESENTABLE)
def test_batch_item_with_no_utc_form_is_that_items_422(coalition, instant):
    items = [earn_body(external_id="t1"), earn_body(external_id="t2", occurred_at=instant)]
    results = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": items}), 200)["results"]
    assert [result["status"] for result in results] == [201, 422]
    assert "occurred_at" in results[1]["error"]["errors"]["json"]
    assert [item["external_id"] for item in list_all(coalition)] == ["t1"]


@pytest.mark.parametrize("field", ["effective_from", "effective_to"])
@pytest.mark.parametrize("instant", UNREPRESENTABLE)
def test_rate_instant_with_no_utc_form_is_422(coalition, field, instant):
    body = {"kind": "redemption", "value": "0.02", "effective_from": days_ago(1), field: instant}
    assert field in assert_error(coalition.post("/api/v1/rates", json=body), 422)["errors"]["json"]


@pytest.mark.parametrize(("path", "parameter"), [("/api/v1/transactions", "from"),
                                                 ("/api/v1/transactions", "to"), ("/api/v1/rates", "at")])
@pytest.mark.parametrize("instant", UNREPRESENTABLE)
def test_instant_filter_with_no_utc_form_is_422(coalition, path, parameter, instant):
    response = coalition.get(path, query_string={parameter: instant})
    assert parameter in assert_error(response, 422)["errors"]["query"]


@pytest.mark.parametrize(("path", "parameter"), [("/api/v1/transactions", "from"), ("/api/v1/rates", "at")])
def test_an_offset_whose_plus_a_query_string_read_as_a_space_is_named(coalition, path, parameter):
    written = "2026-11-20T00:00:00+01:00"
    response = coalition.get(f"{path}?{parameter}={written}")  # unencoded: '+' reads as a space
    (message,) = assert_error(response, 422)["errors"]["query"][parameter]
    assert message.endswith(
        "; '2026-11-20T00:00:00 01:00' has a space where its offset's '+' goes"
        " (a URL's query reads '+' as a space: send it there as %2B)"
    )
    expect(coalition.get(f"{path}?{parameter}={written.replace('+', '%2B')}"), 200)
    (other,) = assert_error(coalition.get(f"{path}?{parameter}=2026-11-20 00:00"), 422)["errors"]["query"][parameter]
    assert "%2B" not in other


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/settlements/9999-12"), ("post", "/api/v1/settlements/9999-12/close"),
     ("get", "/api/v1/kpis?period_id=9999-12")],
)
def test_period_id_whose_end_is_after_year_9999_is_422(coalition, method, path):
    # the period runs to 10000-01-01, which no date holds: refused as any invalid period id,
    # named under "errors" where the request gave it, in its path or its query (SPEC §10)
    body = assert_error(getattr(coalition, method)(path), 422)
    assert "9999-12" in body["message"]
    assert body["errors"] == {"query" if "?" in path else "path": {"period_id": [body["message"]]}}


def test_weekly_period_id_whose_end_is_after_year_9999_is_422(coalition):
    expect(coalition.put("/api/v1/settings", json={"period": "weekly"}), 200)
    assert_error(coalition.get("/api/v1/settlements/9999-W52"), 422)


def test_settings_with_a_huge_number_is_422(coalition):
    assert_error(coalition.put("/api/v1/settings", json={"max_backdate_days": 10**30}), 422)


@pytest.mark.parametrize("value", ["0.0000000000001", "3.5E2", "1e-3", " 0.1", "0.1 ", "+0.1", ".1", "1."])
def test_rate_value_not_written_as_the_pattern_is_422(coalition, value):
    # 13 decimals would be rounded by PostgreSQL's NUMERIC(30,12): refused instead
    body = {"kind": "redemption", "value": value, "effective_from": days_ago(1)}
    assert "value" in assert_error(coalition.post("/api/v1/rates", json=body), 422)["errors"]["json"]


@pytest.mark.parametrize("literal", ["1e-3", "0.0000000000001", "1E2", *HUGE_EXPONENTS])
def test_rate_value_as_a_json_number_not_written_as_the_pattern_is_422(coalition, literal):
    text = f'{{"kind": "redemption", "value": {literal}, "effective_from": "{days_ago(1)}"}}'
    assert_error(raw_post(coalition, "/api/v1/rates", text), 422)


def test_rate_value_with_twelve_decimals_reads_back_exactly(coalition):
    body = {"kind": "redemption", "value": "0.000000000001", "effective_from": days_ago(1)}
    rate = expect(coalition.post("/api/v1/rates", json=body))
    listed = expect(coalition.get("/api/v1/rates", query_string={"kind": "redemption"}), 200)
    assert [r["value"] for r in listed if r["id"] == rate["id"]] == ["0.000000000001"]


def test_threshold_min_amount_not_written_as_the_pattern_is_422(coalition):
    body = {"kind": "threshold", "value": "50", "partner_id": "aroma", "min_amount": "1E3",
            "effective_from": days_ago(1)}
    assert "min_amount" in assert_error(coalition.post("/api/v1/rates", json=body), 422)["errors"]["json"]


def test_rate_with_a_huge_value_is_422(coalition):
    body = {"kind": "redemption", "value": "1" + "0" * 30, "effective_from": days_ago(1)}
    assert_error(coalition.post("/api/v1/rates", json=body), 422)


def test_a_rate_of_ten_to_the_ninth_is_accepted_and_one_millionth_more_refused(coalition):
    # docs/decisions.md, "Limits": rate values up to 10⁹, the bound money.PRECISION is worked
    # out from (10¹² points × a rate under 10⁹ with twelve decimals: 34 digits)
    assert add_rate(coalition, "redemption", "1000000000")["value"] == "1000000000"
    body = {"kind": "redemption", "value": "1000000000.000001", "effective_from": days_ago(1)}
    assert list(assert_error(coalition.post("/api/v1/rates", json=body), 422)["errors"]["json"]) == ["value"]


def test_unknown_route_is_a_json_404(coalition):
    assert_error(coalition.get("/api/v1/nothing-here"), 404)


@pytest.mark.parametrize("path", ["/api//v1/periods", "/api/v1//periods", "/api/v1/periods/"])
def test_a_path_with_a_doubled_or_trailing_slash_is_a_json_404_not_a_redirect(coalition, path):
    assert_error(coalition.get(path), 404)
    assert_error(coalition.post(path.replace("periods", "transactions"), json={}), 404)


def test_wrong_method_is_a_json_405(coalition):
    assert_error(coalition.delete("/api/v1/settings"), 405)


def test_an_unknown_path_or_method_is_told_what_was_asked_and_what_to_ask_instead(coalition):
    # werkzeug's words were "The requested URL was not found on the server. If you entered the
    # URL manually please check your spelling and try again." and "The method is not allowed
    # for the requested URL.": a till reading a transaction by its external_id was told neither
    response = coalition.get("/api/v1/transactions/till-7-000123")
    assert assert_error(response, 404)["message"] == (
        "no such path: /api/v1/transactions/till-7-000123 (the API's paths are listed in /api/openapi.json)")
    response = coalition.delete("/api/v1/settings")
    assert assert_error(response, 405)["message"] == "/api/v1/settings does not take DELETE: it takes GET, HEAD, OPTIONS, PUT"
    assert assert_error(coalition.get("/api/v1/transactions/999999"), 404)["message"] == "no transaction 999999"


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("delete", "/api/v1/settings", {"GET", "HEAD", "OPTIONS", "PUT"}),
    ("delete", "/api/v1/periods", {"GET", "HEAD", "OPTIONS"}),
    ("put", "/healthz", {"GET", "HEAD", "OPTIONS"}),
])
def test_a_405_says_which_methods_are_allowed(coalition, method, path, allowed):
    # RFC 9110 §15.5.6: a 405 carries Allow
    response = getattr(coalition, method)(path)
    assert_error(response, 405)
    assert set(response.headers["Allow"].split(", ")) == allowed
    assert response.headers["Content-Type"] == "application/json"


def test_the_largest_valid_batch_is_not_too_large(coalition):
    """1,000 items (SPEC §6) of the longest type, a bonus, each field at its longest, in
    characters JSON escapes as a surrogate pair of 12 bytes each: about 5.6 MB, under
    the body limit."""
    wide = "\U0001F600"
    items = [
        {"external_id": f"{index:04}" + wide * 124, "type": "bonus", "partner_id": "aroma",
         "member_id": wide * 128, "points": 1, "reason": wide * 200, "occurred_at": days_ago(1)}
        for index in range(1000)
    ]
    text = json.dumps({"transactions": items})  # ensure_ascii: each emoji becomes two 6-byte escapes
    assert len(text) > 5_500_000
    results = expect(raw_post(coalition, "/api/v1/transactions/batch", text), 200)["results"]
    assert [result["status"] for result in results] == [201] * 1000


def test_oversized_body_is_a_json_413(coalition):
    text = '{"transactions": [' + ",".join(['{"external_id": "' + "x" * 100 + '"}'] * 150_000) + "]}"
    assert len(text) > MAX_BODY_BYTES
    body = assert_error(raw_post(coalition, "/api/v1/transactions/batch", text), 413)
    assert body["message"] == (
        "the body is over 16 MiB, the most one request may carry: send the transactions in several batches")


# --- no partial writes ------------------------------------------------------------------


def lot_remaining(database) -> dict[int, int]:
    with database.transaction() as session:
        return dict(session.execute(select(models.Lot.id, models.Lot.remaining)).all())


def row_counts(database) -> tuple[int, int, int]:
    with database.transaction() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table))
            for table in (models.Transaction, models.Allocation, models.Lot)
        )


def test_failed_burn_leaves_lots_balance_and_ledger_unchanged(coalition, database):
    first = expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(10)))  # 100
    second = expect(earn(coalition, "a2", "m1", "500.00", occurred_at=days_ago(9)))  # 50
    lots_before, counts_before = lot_remaining(database), row_counts(database)
    assert lots_before == {first["lot_id"]: 100, second["lot_id"]: 50}
    # 151 > 100 + 50: the first lot alone could pay part of it, but nothing may be taken
    response = burn(coalition, "t1", "m1", 151, occurred_at=days_ago(1))
    assert_error(response, 422)
    assert lot_remaining(database) == lots_before
    assert row_counts(database) == counts_before
    assert balance(coalition, "m1")["available"] == 150


def test_failed_burn_and_over_reversal_leave_lots_unchanged(coalition, database):
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=days_ago(10)))  # 100
    expect(earn(coalition, "a2", "m1", "300.00", occurred_at=days_ago(9)))  # 30
    expect(burn(coalition, "t1", "m1", 60, occurred_at=days_ago(5)))  # 40 + 30 left
    lots_before, counts_before = lot_remaining(database), row_counts(database)
    # 71 > 70: the first lot would fit 40 of them, and they must not stay taken
    assert_error(burn(coalition, "t2", "m1", 71), 422)
    assert_error(burn_reversal(coalition, "u1", "t1", points=61), 422)
    assert_error(earn_reversal(coalition, "r1", "a1", points=101), 422)
    assert lot_remaining(database) == lots_before
    assert row_counts(database) == counts_before


def test_a_return_past_the_purchase_quotes_the_amounts_in_the_currencys_places(coalition):
    # aroma takes RUB, of two places, on PostgreSQL (whose NUMERIC keeps four) as on SQLite
    expect(earn(coalition, "a1", "m1", "20.50", occurred_at=days_ago(10)))
    expect(earn_reversal(coalition, "r1", "a1", amount="20.5"))
    response = earn_reversal(coalition, "r2", "a1", amount="20.50")
    assert_error(response, 422)
    assert response.get_json()["message"] == (
        "returns would total 41.00, more than the purchase amount 20.50: nothing is left to return")


def test_failed_earn_does_not_create_the_member(coalition, database):
    counts_before = row_counts(database)
    assert_error(earn(coalition, "a1", "m-new", "5.00"), 422)  # 5.00 × 0.1 = 0.5 → 0 points
    assert_error(coalition.get("/api/v1/members/m-new/balance"), 404)
    assert row_counts(database) == counts_before


def test_idempotency_conflict_leaves_the_original_unchanged(coalition, database):
    occurred = days_ago(3)
    expect(earn(coalition, "a1", "m1", "1000.00", occurred_at=occurred))  # 100
    counts_before = row_counts(database)
    assert_error(earn(coalition, "a1", "m1", "2000.00", occurred_at=occurred), 409)
    assert row_counts(database) == counts_before
    assert balance(coalition, "m1")["available"] == 100


# --- unauthenticated endpoints -----------------------------------------------------------


def test_the_root_says_where_each_part_is_and_each_answers(client, operator):
    # it was a 404: someone opening the address learnt nothing
    index = expect(client.get("/"), 200)
    assert index["service"] == "coalition"
    assert client.get(index["openapi"]).get_json()["info"]
    for part in ("docs", "console", "health", "ready"):
        with client.get(index[part]) as response:  # a file sent (the console's page) is closed
            assert response.status_code == 200, part
    assert operator.get(index["api"] + "periods").status_code == 200


def test_healthz_answers_without_a_key(client):
    response = client.get("/healthz")
    assert response.status_code == 200


def test_readyz_answers_ready_without_a_key_on_a_database_with_the_newest_schema(client):
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ready", "writes": True})


def test_readyz_is_503_on_a_schema_a_newer_release_upgraded(tmp_path):
    """A migration may change what every release must write (0004 made each posting count
    into the period totals): an instance of the release before must not serve on it."""
    with empty_database(tmp_path) as url:
        app = create_app({"DATABASE_URL": url})
        database = database_of(app)
        try:
            migrate.upgrade(database)
            with database.engine.begin() as connection:
                connection.execute(text("UPDATE alembic_version SET version_num = 'a-newer-release'"))
            body = assert_error(app.test_client().get("/readyz"), 503)
            assert body["reason"] == "schema_not_current" and "newer release" in body["message"]
        finally:
            database.dispose()


def test_readyz_on_a_file_that_is_not_a_database_is_503_not_500(tmp_path):
    path = tmp_path / "not-a-database.sqlite3"
    path.write_text("a spreadsheet, perhaps", encoding="utf-8")
    app = create_app({"DATABASE_URL": f"sqlite:///{path}"})
    try:
        body = assert_error(app.test_client().get("/readyz"), 503)
        assert body["reason"] == "database_unavailable"
        assert body["message"] == (  # was "the database cannot be reached", sending its operator to the network
            "not ready: the database file is damaged (file is not a database):"
            ' restore it from a backup (docs/operations.md, "Data to keep")')
    finally:
        database_of(app).dispose()


@pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite's write lock")
def test_readyz_on_sqlite_does_not_wait_behind_a_writer(app, database_url):
    """A transaction that writes on SQLite begins by taking the write lock: a probe that
    began one waited behind every writer, up to the 30 s busy timeout."""
    with held_for_writing(make_url(database_url).database) as writer:
        writer.execute("UPDATE settings SET generation = generation")
        started = time.monotonic()
        response = app.test_client().get("/readyz")
        waited = time.monotonic() - started
    assert response.status_code == 200 and waited < 5, waited


@pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite's write lock")
def test_a_request_kept_waiting_past_sqlites_busy_timeout_is_503_to_ask_again(tmp_path, monkeypatch):
    """Behind a writer that holds the file past the busy timeout (a close of ten years of
    daily periods held it two minutes), a request is 503 to be asked again, not 500."""
    monkeypatch.setattr(coalition_db, "LOCK_WAIT_MS", 200)
    path = tmp_path / "busy.sqlite3"
    app = create_app({"DATABASE_URL": f"sqlite:///{path}"})
    database = database_of(app)
    partner = {"id": "gym", "name": "Gym", "category": "gym", "currency": "EUR"}
    try:
        migrate.upgrade(database)
        _, key = database.run(lambda session: auth.create_key(session, "operator", None))
        operator = Caller(app.test_client(), key)
        with held_for_writing(path):
            response = operator.post("/api/v1/partners", json=partner)
        body = assert_error(response, 503)
        assert (body["reason"], response.headers["Retry-After"]) == ("database_unavailable", "5")
        # kept waiting on other work, not out of reach: said so
        assert body["message"].startswith("the service waited too long for other work on the database")
        assert expect(operator.post("/api/v1/partners", json=partner))["id"] == "gym"  # once it is let go
    finally:
        database.dispose()


def test_readyz_is_503_until_the_database_has_this_releases_schema(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}"})
    try:
        body = assert_error(app.test_client().get("/readyz"), 503)
        assert body["reason"] == "schema_not_current" and "coalition db upgrade" in body["message"]
        assert app.test_client().get("/healthz").status_code == 200  # the process itself is up
        migrate.upgrade(database_of(app))
        assert app.test_client().get("/readyz").status_code == 200
    finally:
        database_of(app).dispose()


def _drop_every_table(database) -> None:
    """What dropping a database and making it anew leaves: no table, no ledger function."""
    with database.engine.begin() as connection:
        if coalition_db.on_postgresql(connection):
            connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        else:
            models.Base.metadata.drop_all(connection)
            connection.exec_driver_sql("DROP TABLE alembic_version")


@contextmanager
def _served_alone(tmp_path):
    """A service of its own on a database of its own, at this release's schema, and its
    operator: for tests that change the schema under it."""
    with empty_database(tmp_path) as url:
        app = create_app({"DATABASE_URL": url})
        database = database_of(app)
        try:
            migrate.upgrade(database)
            _, key = database.run(lambda session: auth.create_key(session, "operator", None))
            yield app, database, Caller(app.test_client(), key)
        finally:
            database.dispose()


def _welcome(external_id: str) -> dict:
    return {"type": "bonus", "partner_id": "coalition", "member_id": "m1", "points": 5,
            "external_id": external_id, "reason": "welcome", "occurred_at": days_ago(1)}


def test_a_database_whose_tables_went_under_the_service_is_503_schema_not_current(tmp_path):
    """Dropped and made anew, or emptied of its schema, while an instance served it:
    every request was a 500 with a traceback in the log, where /readyz said why."""
    with _served_alone(tmp_path) as (app, database, operator):
        expect(operator.get("/api/v1/partners"), 200)
        _drop_every_table(database)
        answers = [
            operator.get("/api/v1/partners"),
            operator.get("/api/v1/members/m1/balance"),
            operator.post("/api/v1/transactions", json=_welcome("b1")),
            operator.post("/api/v1/transactions/batch", json={"transactions": [_welcome("b2")]}),
            app.test_client().get("/readyz"),
        ]
        for response in answers:
            body = assert_error(response, 503)
            assert body["reason"] == "schema_not_current", body
            assert "coalition db upgrade" in body["message"], body
            assert response.headers["Retry-After"] == "5"
        migrate.upgrade(database)  # what the answers ask for, with the service still running
        assert app.test_client().get("/readyz").status_code == 200
        assert operator.get("/api/v1/partners").status_code == 401  # the key went with its table


def test_an_instance_stops_serving_as_soon_as_a_newer_release_upgrades_its_database(tmp_path):
    """It went on reading and writing as its release did until a load balancer's probe
    of /readyz took it out, and for any client that reached it directly; a migration
    may change what every release must write."""
    with _served_alone(tmp_path) as (_, database, operator):
        head = database.peek(migrate.VERSIONS)
        expect(operator.get("/api/v1/partners"), 200)  # its catalog cached

        def released(version: str) -> None:
            """What an upgrade to ``version`` leaves, as a release that knows it does."""
            with database.engine.begin() as connection:
                connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": version})
                connection.execute(models.new_generation())

        released("9999")
        answers = [
            operator.get("/api/v1/partners"),
            operator.get("/api/v1/members/m1/balance"),
            operator.post("/api/v1/transactions", json=_welcome("b1")),
            operator.post("/api/v1/partners", json={"id": "gym", "name": "Gym", "category": "gym",
                                                    "currency": "EUR", "hold_days": 0}),
        ]
        for response in answers:
            body = assert_error(response, 503)
            assert (body["reason"], body["message"]) == ("schema_not_current", coalition_db.SCHEMA_IS_NEWER)
        counted = database.run(lambda session: (
            session.scalar(select(func.count()).select_from(models.Transaction)),
            session.scalar(select(func.count()).select_from(models.Partner)),
        ))
        assert counted == (0, 1)  # nothing written: the coalition partner alone
        released(head)  # the deploy rolled back: its release's schema again
        assert expect(operator.post("/api/v1/transactions", json=_welcome("b1")), 201)["points"] == 5


@pytest.mark.postgres
def test_an_upgrade_waits_for_the_postings_in_flight_and_the_next_ones_for_it(tmp_path):
    """A burn waiting on its member's lock, the calendar's taken and the catalog read,
    was written after an upgrade had committed, the old release's way."""
    with _served_alone(tmp_path) as (_, database, operator):
        head = database.peek(migrate.VERSIONS)
        add_rate(operator, "redemption", "0.01")
        expect(bonus(operator, "b1", "m1", 50, occurred_at=days_ago(3)), 201)
        # nine migrations to run: 0018's instant one, 0019 and 0021, whose columns are
        # there already, 0020, 0022 and 0023, whose trigger and function it makes again,
        # 0024 and 0025, whose indexes are there already, and 0026, whose table is there
        with database.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0017'"))
        with database.engine.connect() as holder, ThreadPoolExecutor(2) as pool:
            holder.execute(text("SELECT id FROM members WHERE id = 'm1' FOR UPDATE"))
            posting = pool.submit(burn, operator, "x1", "m1", 10, partner_id="coalition",
                                  occurred_at=days_ago(1))
            until_waiting_on_locks(database.engine, 1)  # the burn, on the member
            upgrading = pool.submit(migrate.upgrade, database)
            until_waiting_on_locks(database.engine, 2, unless=upgrading.done)  # on the calendar
            assert not upgrading.done()
            holder.rollback()
            assert expect(posting.result(timeout=30), 201)["points"] == -10
            assert upgrading.result(timeout=30) == frozenset({"0017"})
        assert database.peek(migrate.VERSIONS) == head
        assert expect(burn(operator, "x2", "m1", 5, partner_id="coalition",
                           occurred_at=days_ago(1)), 201)["points"] == -5


def test_an_error_whose_values_say_no_such_table_is_not_a_missing_table(database):
    # PostgreSQL's error carries the row's values, which a partner may have written
    with pytest.raises(IntegrityError):
        with coalition_db.reaching(), database.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TEMPORARY TABLE said (x text PRIMARY KEY)")
            connection.exec_driver_sql("INSERT INTO said VALUES ('no such table'), ('no such table')")


def test_a_batch_item_the_schema_failed_says_so_as_a_request_would():
    from coalition.api.transactions import _result

    gone = _result(3, coalition_db.SchemaNotCurrent(coalition_db.SCHEMA_IS_OLDER, "no lots"))
    away = _result(4, coalition_db.Unavailable("connection refused"))
    assert (gone["index"], gone["status"], gone["error"]["reason"]) == (3, 503, "schema_not_current")
    assert (away["index"], away["status"], away["error"]["reason"]) == (4, 503, "database_unavailable")


def test_the_openapi_document_promises_code_status_and_message_in_every_error(client):
    document = client.get("/api/openapi.json").get_json()
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "status", "message"}  # SPEC §10
    assert "left out" in document["info"]["description"]  # what an empty query value means


def _query_parameters(document, part="schema"):
    for template, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []) if method != "parameters" else []:
                if parameter.get("in") == "query":
                    yield f"{method} {template} {parameter['name']}", parameter.get(part)


def test_no_query_parameter_of_the_openapi_document_is_nullable(client):
    """A query string cannot carry null: a filter is given or left out. Documented as nullable
    with a null default and null among its values, ``role`` of ``GET /keys`` became three
    enum classes in a client generated by openapi-python-client (a consumer probe)."""
    document = expect(client.get("/api/openapi.json"), 200)
    parameters = dict(_query_parameters(document))
    assert len(parameters) >= 40
    said_null = [
        name for name, schema in parameters.items()
        if "nullable" in schema or ("default" in schema and schema["default"] is None) or None in schema.get("enum", [])
    ]
    assert said_null == []
    assert parameters["get /api/v1/keys role"]["enum"] == ["operator", "finance", "partner"]
    assert parameters["get /api/v1/statements limit"] == {"type": "integer", "minimum": 1, "maximum": 1000}


def test_the_openapi_document_says_every_query_parameter_may_be_sent_empty(client):
    """An empty value is the parameter left out (the test below), and the document says
    so: without ``allowEmptyValue``, ``partner_id``'s slug pattern told a client, and
    schemathesis's negative checks, that ``?partner_id=`` is refused (it is answered
    as if left out: schemathesis reported "schema-violating request accepted")."""
    document = expect(client.get("/api/openapi.json"), 200)
    allowed = dict(_query_parameters(document, "allowEmptyValue"))
    assert len(allowed) >= 40
    assert [name for name, empty in allowed.items() if empty is not True] == []
    required = dict(_query_parameters(document, "required"))
    assert not any(required.values())  # a required one sent empty would be missing


def test_the_openapi_document_gives_the_shape_of_an_errors_field_as_answered(coalition):
    """A partner's generated client reads ``errors`` as the document types it: by where each
    field was sent, then by field, a list of messages; or, for a body that is not JSON, the
    list alone. It was an untyped object described as "Errors"."""
    document = expect(coalition.client.get("/api/openapi.json"), 200)
    described = document["components"]["schemas"]["Error"]["properties"]["errors"]
    assert "`query`" in described["description"] and "`_schema`" in described["description"]
    validator = jsonschema_rs.Draft4Validator(document["components"]["schemas"]["Error"])
    answers = [
        coalition.post("/api/v1/transactions", json=earn_body(amount=None, extra=1)),
        coalition.post("/api/v1/transactions", json=earn_body(amount="1.001")),
        coalition.get("/api/v1/transactions?limit=0&foo=1"),
        coalition.get("/api/v1/settlements/xyz"),
        raw_post(coalition, "/api/v1/transactions", "{"),
        coalition.post("/api/v1/transactions/batch", json={"transactions": ["not an object"]}),
    ]
    bodies = [assert_error(answer, None) for answer in answers[:-1]]
    bodies.append(expect(answers[-1], 200)["results"][0]["error"])
    assert all("errors" in body for body in bodies), bodies
    assert [body for body in bodies if not validator.is_valid(body)] == []
    assert not validator.is_valid({"code": 422, "status": "x", "message": "x", "errors": {"json": {"amount": 5}}})


#: A value for each path parameter of the document, to call every operation.
PATH_VALUES = {"key_id": "1", "partner_id": "aroma", "transaction_id": "1", "member_id": "m1",
               "period_id": "2026-10", "statement_id": "1"}


def test_every_operation_that_takes_no_query_refuses_a_parameter_naming_none(coalition):
    """A parameter an operation does not read was ignored where it reads no query: a partner
    asking for a balance ``?at=`` a burn's time got today's, ``/periods?status=open`` every
    period, ``.../close?dry_run=1`` a closed period, each with no word that it was not read;
    an operation with a query's schema refused one (422), naming those it takes. Its 422 is
    in its document's responses, as every error an operation answers (the balance, the
    periods, a statement's PDF listed none, and a client generated from it knew no 422)."""
    document = expect(coalition.client.get("/api/openapi.json"), 200)
    called = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters" or any(p["in"] == "query" for p in operation.get("parameters", [])):
                continue
            url = re.sub(r"{(\w+)}", lambda name: PATH_VALUES[name[1]], path)
            body = assert_error(getattr(coalition, method)(f"{url}?at={days_ago(60)}&dry_run=1&empty="), 422)
            refused = ["not a parameter of this request, which takes none"]
            assert body["errors"] == {"query": {"at": refused, "dry_run": refused}}, (method, url)
            assert "422" in operation["responses"], (method, path)
            called.append(f"{method} {url}")
    assert len(called) == 21, called  # the 29 operations but the 8 that read a query
    assert list_all(coalition) == []
    assert expect(coalition.get("/api/v1/periods"), 200)[0]["status"] == "open"  # nothing closed


def test_a_query_is_refused_only_once_the_key_is_admitted(coalition, client, make_key):
    # a key's 401 and a role's 403 come first, as they come before a body is read
    assert "errors" not in assert_error(client.get("/api/v1/periods?access_token=x"), 401)
    till = make_key("partner", "aroma")
    assert "errors" not in assert_error(till.get("/api/v1/settlements/2026-10?partner_id=aroma"), 403)


def test_the_openapi_document_names_the_health_checks_it_leaves_out_and_what_they_answer(client):
    """An integrator reading the document found no word of them; they are not its operations
    (decisions.md, "Two health checks, asked without a key"), but its description says them."""
    document = expect(client.get("/api/openapi.json"), 200)
    assert [path for path in document["paths"] if not path.startswith("/api/v1/")] == []
    described = document["info"]["description"]
    assert "`/healthz` answers 200" in described and expect(client.get("/healthz"), 200) == {"status": "ok"}
    ready = expect(client.get("/readyz"), 200)
    assert f"`/readyz` 200 `{json.dumps(ready)}`" in described


def test_the_health_checks_ignore_a_query_as_a_probe_may_send_one(client):
    # a load balancer's probe with a cache-buster must not take the instance out of rotation
    assert expect(client.get("/healthz?_=1733540000"), 200) == {"status": "ok"}
    assert expect(client.get("/readyz?_=1733540000"), 200)["status"] == "ready"


@pytest.mark.parametrize(
    ("schema", "field", "values"),
    [
        ("PeriodOut", "status", ("open", "closed")),
        ("PeriodKpis", "status", ("open", "closed")),
        ("SettlementOut", "status", ("draft", "final")),
        ("StatementOut", "status", ("final",)),
        ("KeyRecord", "role", auth.ROLES),
        ("KeyOut", "role", auth.ROLES),
        ("RateOut", "kind", rates.KINDS),
        ("Movement", "type", lots.TYPES),
        ("LateItem", "type", lots.TYPES),
        ("ChangeOut", "subject", ("key", "partner", "period", "rate", "settings")),
    ],
)
def test_the_openapi_document_names_the_values_an_answer_field_takes(client, schema, field, values):
    """A string an answer takes from a few values is described, not an enum (a value a
    later release adds must not break a client, as for a transaction's type), and its
    description names each, so that an integrator reading the document alone knows what
    a settlement's status or a key's role may be. These were bare strings (an
    integrator's probe: the requests' enums had them, the answers did not)."""
    schemas = expect(client.get("/api/openapi.json"), 200)["components"]["schemas"]
    described = schemas[schema]["properties"][field]
    assert "enum" not in described
    named = described["description"].split(";")[0].split(":")[0].removeprefix("One of ")
    assert named.replace(" or ", ", ").split(", ") == list(values)


def test_the_openapi_document_says_how_a_period_id_is_written(client):
    """A period id is in paths, queries and answers; a developer writing one for
    /settlements/{period_id} learns its three forms from the document, which gave them
    nowhere: a wrong one is 422 "not a period id of the coalition's calendar" (an
    integrator's probe)."""
    document = expect(client.get("/api/openapi.json"), 200)
    described = {
        f"{method} {path}": parameter.get("description", "")
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method != "parameters"
        for parameter in operations.get("parameters", []) + operation.get("parameters", [])
        if parameter.get("name") == "period_id"
    }
    assert len(described) == 7
    described["PeriodOut.id"] = document["components"]["schemas"]["PeriodOut"]["properties"]["id"].get("description", "")
    assert {where for where, text in described.items() if not all(
        form in text for form in ("2026-10 (monthly)", "2026-W43 (weekly", "2026-10-05 (daily)"))} == set()


def test_openapi_document_is_served(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert "openapi" in document
    for path in ("/api/v1/transactions", "/api/v1/transactions/batch", "/api/v1/members/{member_id}/balance",
                 "/api/v1/partners", "/api/v1/rates", "/api/v1/settings", "/api/v1/keys"):
        assert path in document["paths"], path


def test_openapi_document_says_what_each_transaction_type_needs(client):
    """The schema alone says only what every type needs; a till's developer reads the rest."""
    body = client.get("/api/openapi.json").get_json()["paths"]["/api/v1/transactions"]["post"]
    described = body["requestBody"]["description"]
    assert "earn needs amount, currency, member_id and refuses" in described
    assert "burn needs member_id, points and refuses amount" in described


def test_openapi_document_declares_bearer_security(client):
    document = client.get("/api/openapi.json").get_json()
    schemes = document["components"]["securitySchemes"]
    assert any(scheme.get("scheme") == "bearer" for scheme in schemes.values())


def test_swagger_ui_is_served(client):
    assert client.get("/api/docs").status_code == 200


def test_no_page_is_shown_in_another_sites_frame(client):
    # a user authorises Swagger UI with a key: a framing site could click "Try it out" for them
    for page in ("/api/docs", "/console/"):
        with client.get(page) as response:
            assert response.mimetype == "text/html", page
            assert response.headers["X-Frame-Options"] == "DENY", page
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], page


def test_swagger_ui_serves_the_files_api_docs_loads_and_not_its_stock_pages(client):
    page = client.get("/api/docs").get_data(as_text=True)
    for loaded in ("swagger-ui.css", "swagger-ui-standalone-preset.js", "swagger-ui-bundle.js"):
        assert f"/api/swagger-ui/{loaded}" in page
        with client.get(f"/api/swagger-ui/{loaded}") as asset:
            assert asset.status_code == 200
    # the package's own page loads the petstore's document from another site into this origin
    for stock in ("index.html", "oauth2-redirect.html", "swagger-initializer.js"):
        with client.get(f"/api/swagger-ui/{stock}") as refused:
            assert refused.status_code == 404


@pytest.mark.parametrize(
    "instant",
    [
        "2026-W48-7T10:00:00+00:00",  # ISO week date
        "2026-11-29 10:15:00+03:00",  # space for T
        "2026-11-29T10:15+03:00",  # no seconds
        "20261129T101500+0300",  # ISO basic format
        "2026-11-29T10:15:00+0300",  # offset without its colon
        "2026-11-29T10:15:00",  # no offset
    ],
)
def test_occurred_at_not_written_as_rfc_3339_is_422(coalition, instant):
    body = assert_error(coalition.post("/api/v1/transactions", json=earn_body(occurred_at=instant)), 422)
    assert "occurred_at" in body["errors"]["json"]
    assert list_all(coalition) == []


def test_rfc_3339_lower_case_t_and_z_and_nanoseconds_are_read(coalition):
    at = days_ago(3).removesuffix("+00:00")  # whole seconds, as the helpers write it
    written = at.replace("T", "t") + ".123456789z"
    posted = expect(coalition.post("/api/v1/transactions", json=earn_body(occurred_at=written)))
    assert posted["occurred_at"] == at + ".123456+00:00"  # microseconds are what is stored


@pytest.mark.parametrize(
    ("path", "query", "unknown"),
    [
        ("/api/v1/transactions", {"partner": "aroma"}, "partner"),  # partner_id misspelt
        ("/api/v1/statements", {"period": "2026-10"}, "period"),
        ("/api/v1/rates", {"kind": "fx", "partner": "aroma"}, "partner"),  # partner_id misspelt
        ("/api/v1/kpis", {"period": "2026-10"}, "period"),
        ("/api/v1/members/m1/history", {"page": "2"}, "page"),
    ],
    ids=repr,
)
def test_an_unknown_query_parameter_is_422_not_ignored(coalition, path, query, unknown):
    # ignored, a misspelt filter would list everything as if it had matched
    body = assert_error(coalition.get(path, query_string=query), 422)
    assert list(body["errors"]["query"]) == [unknown]


def test_an_unknown_query_parameter_is_named_with_the_other_parameters_at_fault(coalition):
    # one 422 names every parameter to correct, as a body's validation names every field
    body = assert_error(coalition.get("/api/v1/transactions", query_string={"partner": "aroma", "limit": "0"}), 422)
    assert sorted(body["errors"]["query"]) == ["limit", "partner"]


def test_a_cursor_too_long_to_be_one_is_told_it_is_not_one_the_service_returned(coalition):
    # it was "Longer than maximum length 32.", blaming the length of what was never a cursor,
    # where one of 20 digits is told "cursor is not one this service returned"; then it was
    # told so without the reason, bad_cursor, a client reads to start again from page one
    body = assert_error(coalition.get("/api/v1/transactions", query_string={"cursor": "c" * 33}), 422)
    assert body["errors"] == {"query": {"cursor": ["cursor is not one this service returned"]}}
    assert body["reason"] == "bad_cursor"


def test_an_unknown_query_parameter_is_told_which_the_request_takes(coalition):
    # "Unknown field." left a till's developer to find that the filter is partner_id
    body = assert_error(coalition.get("/api/v1/rates", query_string={"kind": "fx", "partner": "aroma"}), 422)
    assert body["errors"]["query"] == {"partner": ["not a parameter of this request, which takes kind, partner_id, currency, at"]}
    assert body["message"] == "Invalid fields: partner: not a parameter of this request, which takes kind, partner_id, currency, at"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/transactions?partner_id=&member_id=&type=&period_id=&from=&to=",
        "/api/v1/rates?kind=&partner_id=&at=",
        "/api/v1/statements?period_id=&partner_id=",
        "/api/v1/kpis?period_id=&partner_id=",
        "/api/v1/members/m1/history?limit=&cursor=",
    ],
)
def test_a_query_parameter_left_empty_is_left_out(coalition, url):
    """SPEC writes its listings as templates (`?kind=&partner_id=&at=`); a client that
    fills in none of them gets what it would with no query at all."""
    expect(coalition.post("/api/v1/transactions", json=earn_body()))
    assert expect(coalition.get(url), 200) == expect(coalition.get(url.split("?")[0]), 200)


@pytest.mark.parametrize(
    ("url", "repeated"),
    [
        ("/api/v1/transactions?type=earn&type=burn", "type"),
        ("/api/v1/transactions?type=earn&member_id=m1&type=earn", "type"),
        ("/api/v1/rates?kind=earn&kind=fee", "kind"),
        ("/api/v1/members/m1/history?limit=1&limit=2", "limit"),
    ],
)
def test_a_query_parameter_given_twice_is_422_not_read_once(coalition, url, repeated):
    """Read once, `?type=earn&type=burn` would list the earns as if the burns were asked for
    and there were none."""
    expect(coalition.post("/api/v1/transactions", json=earn_body()))
    body = assert_error(coalition.get(url), 422)
    assert body["errors"]["query"] == {repeated: ["give one value only"]}


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("/api/v1/rates?partner=aroma&partner=gym", "not a parameter of this request, which takes kind, partner_id,"
                                                    " currency, at"),
        ("/api/v1/periods?status=open&status=closed", "not a parameter of this request, which takes none"),
    ],
    ids=["rates", "periods"],
)
def test_a_parameter_not_taken_given_twice_is_told_it_is_not_taken(coalition, url, said):
    # it was "give one value only", as if one value of it would be read
    body = assert_error(coalition.get(url), 422)
    assert body["errors"] == {"query": {url.split("?")[1].split("=")[0]: [said]}}


# --- endpoints that read no body --------------------------------------------------------


def _closable_period(coalition) -> str:
    """Last month, with one earn in it: closable (its end is past, RUB has an fx rate)."""
    add_rate(coalition, "fx", "0.011", currency="RUB")
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).replace(hour=12)
    expect(coalition.post("/api/v1/transactions", json=earn_body(occurred_at=last_month.isoformat())))
    return last_month.strftime("%Y-%m")


def test_malformed_json_sent_to_a_close_is_400_and_closes_nothing(coalition):
    period = _closable_period(coalition)
    response = coalition.post(f"/api/v1/settlements/{period}/close", data="{bad", content_type="application/json")
    assert assert_error(response, 400) == assert_error(raw_post(coalition, "/api/v1/transactions", "{bad"), 400)
    assert expect(coalition.get(f"/api/v1/settlements/{period}"), 200)["status"] == "draft"


@pytest.mark.parametrize(("data", "content_type"), [
    (None, None), ("", "application/json"), ("{}", "application/json"), ("{bad", "text/plain")],
    ids=["no body", "empty, declared JSON", "an empty object", "not declared JSON"])
def test_a_close_sent_no_body_or_one_that_parses_or_is_not_json_closes(coalition, data, content_type):
    """The body is not read; only JSON that does not parse is refused."""
    period = _closable_period(coalition)
    response = coalition.post(f"/api/v1/settlements/{period}/close", data=data, content_type=content_type)
    assert expect(response, 200)["status"] == "final"


def test_malformed_json_sent_to_a_key_revocation_is_400_and_revokes_nothing(coalition):
    made = expect(coalition.post("/api/v1/keys", json={"role": "finance"}))
    response = coalition.delete(f"/api/v1/keys/{made['id']}", data="[1,", content_type="application/json")
    assert_error(response, 400)
    finance = Caller(coalition.client, made["key"])
    assert finance.get("/api/v1/settings").status_code == 200
    assert coalition.delete(f"/api/v1/keys/{made['id']}", data="{}", content_type="application/json").status_code == 204
    assert finance.get("/api/v1/settings").status_code == 401


# --- the OpenAPI document lists the errors each operation answers ------------------------


def _template(document: dict, method: str, path: str) -> str:
    """The path template of the document's operation that serves ``method path``."""
    path = path.split("?")[0].format(period="2026-01")
    for template, operations in document["paths"].items():
        pattern = "[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", template))
        if re.fullmatch(pattern, path) and method in operations:
            return template
    raise AssertionError(f"no operation for {method.upper()} {path} in the OpenAPI document")


def _described(document: dict, response: dict) -> dict:
    """A response of the document, its reference to components/responses followed."""
    ref = response.get("$ref", "")
    return document["components"]["responses"][ref.rsplit("/", 1)[1]] if ref else response


def _key(coalition, role: str, partner_id: str | None = None) -> Caller:
    return Caller(coalition.client, expect(coalition.post("/api/v1/keys", json={"role": role, "partner_id": partner_id}))["key"])


def _earned_last_month(coalition) -> str:
    """An earn at aroma (RUB) last month, whose id is returned, and nothing else: RUB has no fx rate."""
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).replace(hour=12)
    expect(coalition.post("/api/v1/transactions", json=earn_body(occurred_at=last_month.isoformat())))
    return last_month.strftime("%Y-%m")


def _closed_last_month(coalition) -> str:
    period = _closable_period(coalition)
    expect(coalition.post(f"/api/v1/settlements/{period}/close"), 200)
    return period


def _reposted_otherwise(coalition):
    expect(coalition.post("/api/v1/transactions", json=earn_body()))
    return coalition.post("/api/v1/transactions", json=earn_body(amount="200.00"))


def _after_a_transaction(coalition, method: str, path: str, body: dict):
    expect(coalition.post("/api/v1/transactions", json=earn_body()))
    return getattr(coalition, method)(path, json=body)


#: (method, path, what triggers the error from the standard coalition's operator, status, reason).
#: Each body-reading endpoint's 400 and 415 come from JSON_WRITES below; 401 from the role matrix.
DOCUMENTED_ERRORS = [
    ("post", "/api/v1/settlements/2026-01/close", lambda c, path: raw_post(c, path, "{bad"), 400, None),
    ("delete", "/api/v1/keys/key_000000000000", lambda c, path: c.delete(path, data="[1,", content_type="application/json"), 400, None),
    # 403 beyond a key's role (test_role_matrix.py has those): a bound key naming another partner
    ("post", "/api/v1/transactions", lambda c, path: _key(c, "partner", "aroma").post(path, json=earn_body(partner_id="skyair", currency="EUR")), 403, "forbidden"),
    ("post", "/api/v1/transactions", lambda c, path: _key(c, "finance").post(path, json=earn_body()), 403, "forbidden"),
    ("post", "/api/v1/transactions/batch", lambda c, path: _key(c, "finance").post(path, json={"transactions": [earn_body()]}), 403, "forbidden"),
    ("get", "/api/v1/transactions?partner_id=skyair", lambda c, path: _key(c, "partner", "aroma").get(path), 403, "forbidden"),
    ("get", "/api/v1/statements?partner_id=skyair", lambda c, path: _key(c, "finance", "aroma").get(path), 403, "forbidden"),
    ("get", "/api/v1/kpis?partner_id=skyair", lambda c, path: _key(c, "partner", "aroma").get(path), 403, "forbidden"),
    ("get", "/api/v1/settlements/2026-01", lambda c, path: _key(c, "finance", "aroma").get(path), 403, "forbidden"),
    ("get", "/api/v1/settings", lambda c, path: _key(c, "partner", "aroma").get(path), 403, "forbidden"),
    ("put", "/api/v1/settings", lambda c, path: _key(c, "finance").put(path, json={"points_ttl_days": 30}), 403, "forbidden"),
    # 404: an id that names nothing, or what the key may not see
    ("delete", "/api/v1/keys/key_000000000000", lambda c, path: c.delete(path), 404, "not_found"),
    ("get", "/api/v1/keys/key_000000000000", lambda c, path: c.get(path), 404, "not_found"),
    ("get", "/api/v1/partners/nobody", lambda c, path: c.get(path), 404, "not_found"),
    ("patch", "/api/v1/partners/nobody", lambda c, path: c.patch(path, json={"name": "Nobody"}), 404, "not_found"),
    ("get", "/api/v1/transactions/999999", lambda c, path: c.get(path), 404, "not_found"),
    ("get", "/api/v1/members/nobody/balance", lambda c, path: c.get(path), 404, "not_found"),
    ("get", "/api/v1/members/nobody/history", lambda c, path: c.get(path), 404, "not_found"),
    ("get", "/api/v1/kpis?partner_id=nobody", lambda c, path: c.get(path), 404, "not_found"),
    ("get", "/api/v1/kpis?period_id=2001-01", lambda c, path: c.get(path), 404, "not_found"),
    ("get", "/api/v1/settlements/2999-01", lambda c, path: c.get(path), 404, "not_found"),
    ("get", "/api/v1/settlements/2999-01/csv", lambda c, path: c.get(path), 404, "not_found"),
    ("post", "/api/v1/settlements/2001-01/close", lambda c, path: c.post(path), 404, "not_found"),
    ("get", "/api/v1/statements/999999", lambda c, path: c.get(path), 404, "not_found"),
    ("get", "/api/v1/statements/999999/pdf", lambda c, path: c.get(path), 404, "not_found"),
    ("get", "/api/v1/statements/999999/csv", lambda c, path: c.get(path), 404, "not_found"),
    # 409: the request conflicts with what is recorded
    ("post", "/api/v1/transactions", lambda c, path: _reposted_otherwise(c), 409, "idempotency_conflict"),
    ("post", "/api/v1/partners", lambda c, path: c.post(path, json={"id": "aroma", "name": "Aroma", "category": "cafe", "currency": "RUB"}), 409, "duplicate_partner"),
    ("patch", "/api/v1/partners/aroma", lambda c, path: _after_a_transaction(c, "patch", path, {"currency": "EUR"}), 409, "currency_fixed"),
    ("put", "/api/v1/settings", lambda c, path: _after_a_transaction(c, "put", path, {"base_currency": "USD"}), 409, "base_currency_fixed"),
    ("put", "/api/v1/settings", lambda c, path: _after_a_transaction(c, "put", path, {"period": "weekly"}), 409, "calendar_fixed"),
    ("post", "/api/v1/rates", lambda c, path: c.post(path, json={"kind": "redemption", "value": "0.02", "effective_from": f"{_closed_last_month(c)}-02T00:00:00+00:00"}), 409, "period_closed"),
    ("post", "/api/v1/settlements/{period}/close", lambda c, path: c.post(path.format(period=f"{datetime.now(UTC):%Y-%m}")), 409, "period_open"),
    ("post", "/api/v1/settlements/{period}/close", lambda c, path: c.post(path.format(period=_earned_last_month(c))), 409, "no_rate"),
    # 422 for a rule a posting breaks, named by its reason in the document
    ("post", "/api/v1/transactions", lambda c, path: c.post(path, json={"external_id": "b1", "type": "burn", "partner_id": "aroma", "member_id": "m1", "occurred_at": days_ago(1), "points": 10}), 422, "insufficient_points"),
    ("post", "/api/v1/transactions", lambda c, path: c.post(path, json=earn_body(amount="1.00")), 422, "zero_points"),
    # 422 from a view without a schema: a period id the calendar does not have
    ("get", "/api/v1/settlements/2026-13", lambda c, path: c.get(path), 422, "invalid"),
    ("get", "/api/v1/settlements/2026-13/csv", lambda c, path: c.get(path), 422, "invalid"),
    ("post", "/api/v1/settlements/2026-13/close", lambda c, path: c.post(path), 422, "invalid"),
]
DOCUMENTED_ERRORS += [(method, path, lambda c, path, method=method: getattr(c, method)(path, data="{bad", content_type="application/json"), 400, None)
                      for method, path, _ in JSON_WRITES]
DOCUMENTED_ERRORS += [(method, path, lambda c, path, method=method, body=body: getattr(c, method)(path, data=json.dumps(body), content_type="text/plain"), 415, None)
                      for method, path, body in JSON_WRITES]


@pytest.mark.parametrize(("method", "path", "trigger", "status", "reason"), DOCUMENTED_ERRORS,
                         ids=[f"{status} {reason or ''} {method.upper()} {path}" for method, path, _, status, reason in DOCUMENTED_ERRORS])
def test_an_error_an_operation_answers_is_in_its_openapi_responses(coalition, method, path, trigger, status, reason):
    """A partner's developer reads what each operation may answer in /api/openapi.json: the
    error is answered, and listed under the operation with the error schema, its
    description naming the reason."""
    response = trigger(coalition, path)
    body = assert_error(response, status)
    assert body.get("reason") == reason, body
    document = expect(coalition.client.get("/api/openapi.json"), 200)
    responses = document["paths"][_template(document, method, path)][method]["responses"]
    assert str(status) in responses, (status, sorted(responses))
    documented = _described(document, responses[str(status)])
    assert documented["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    if reason is not None:
        assert documented["description"].startswith(reason) or f"; {reason}:" in documented["description"], documented


def test_every_error_an_operation_lists_is_one_a_test_here_or_in_the_role_matrix_answers(client):
    """The other way round: no operation lists a 400, 403, 404, 409, 415 or (beyond its
    schema's) 422 that no test finds it answering. 401 and 503 are every operation's."""
    document = expect(client.get("/api/openapi.json"), 200)
    listed = {
        (method, template, int(status))
        for template, item in document["paths"].items()
        for method, operation in item.items() if method in ("get", "put", "post", "patch", "delete")
        for status, response in operation["responses"].items()
        if status in ("400", "403", "404", "409", "415", "422")
        and response != {"$ref": "#/components/responses/UNPROCESSABLE_ENTITY"}
    }
    answered = {(method, _template(document, method, path), status) for method, path, _, status, _ in DOCUMENTED_ERRORS}
    answered |= {(row.method.lower(), "/api/v1" + row.template, status)
                 for row in role_matrix.ROWS for status in row.expected}
    assert sorted(listed - answered) == []


def test_every_operation_lists_401_and_503_once_for_all(client):
    """Every /api/v1 operation authenticates its key and reads the database: both
    answers are described once, under components/responses, and each operation names them."""
    document = expect(client.get("/api/openapi.json"), 200)
    operations = [(path, method, operation) for path, item in document["paths"].items() if path.startswith("/api/v1/")
                  for method, operation in item.items() if method in ("get", "put", "post", "patch", "delete")]
    assert len(operations) >= 24
    for path, method, operation in operations:
        assert operation["responses"]["401"] == {"$ref": "#/components/responses/UNAUTHENTICATED"}, (method, path)
        assert operation["responses"]["503"] == {"$ref": "#/components/responses/DATABASE_UNAVAILABLE"}, (method, path)
        assert "default" in operation["responses"], (method, path)
    shared = document["components"]["responses"]
    assert shared["UNAUTHENTICATED"]["description"].startswith("unauthenticated:")
    assert shared["DATABASE_UNAVAILABLE"]["description"].startswith("database_unavailable:")
    assert "Retry-After" in shared["DATABASE_UNAVAILABLE"]["headers"]


def test_an_operation_lists_its_responses_by_status_and_default_last(client):
    responses = expect(client.get("/api/openapi.json"), 200)["paths"]["/api/v1/transactions"]["post"]["responses"]
    assert list(responses) == ["200", "201", "400", "401", "403", "409", "415", "422", "503", "default"]


def _earn_body(**fields):
    return {"external_id": "t-9", "type": "earn", "partner_id": "aroma", "member_id": "m1",
            "occurred_at": days_ago(1), "amount": "100.00", "currency": "RUB", **fields}


@pytest.mark.parametrize(("body", "field"), [
    (_earn_body(original_external_id="e-1"), "original_external_id"),
    ({**_earn_body(type="bonus", partner_id="coalition", points=5, reason="welcome"), "currency": None,
      "amount": "1.00"}, "amount"),
    ({**_earn_body(type="burn", points=5, reason="why"), "amount": None, "currency": None}, "reason"),
    ({"external_id": "t-9", "type": "burn_reversal", "partner_id": "aroma", "occurred_at": days_ago(1),
      "original_external_id": "b-1", "amount": "1.00", "currency": "RUB"}, "amount"),
], ids=["earn original_external_id", "bonus amount", "burn reason", "burn_reversal amount"])
def test_a_field_its_type_does_not_take_is_refused_by_name_and_nothing_is_written(coalition, body, field):
    expect(earn(coalition, "e-1", "m1", "100.00"))
    expect(burn(coalition, "b-1", "m1", 5))
    before = list_all(coalition)
    response = coalition.post("/api/v1/transactions", json={key: value for key, value in body.items()
                                                            if value is not None})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"]["json"] == {field: ["not allowed for this type"]}
    assert list_all(coalition) == before


@pytest.mark.parametrize("amount", ["0", "0.00", "1000000000000000.01"])
def test_an_amount_out_of_range_is_the_fields_error_not_a_rule_of_the_ledger(coalition, amount):
    response = coalition.post("/api/v1/transactions", json=_earn_body(amount=amount))
    body = response.get_json()
    assert response.status_code == 422, body
    assert "reason" not in body and list(body["errors"]["json"]) == ["amount"]


def test_a_four_letter_currency_is_no_iso_4217_code(coalition):
    response = coalition.post("/api/v1/transactions", json=_earn_body(currency="RUBX"))
    body = response.get_json()
    assert response.status_code == 422 and "reason" not in body, body
    assert body["errors"]["json"] == {"currency": ["must be an ISO 4217 code"]}


def test_a_decimal_point_with_no_digits_after_it_is_no_rfc_3339_instant(coalition):
    response = coalition.post("/api/v1/transactions", json=_earn_body(occurred_at=days_ago(1)[:19] + ".+03:00"))
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["occurred_at"] == [
        "must be an RFC 3339 instant with its offset, e.g. 2026-10-03T10:15:00+03:00"]


def test_a_min_amount_of_sixteen_digits_the_largest_amount_is_accepted(coalition):
    rate = add_rate(coalition, "threshold", "5", partner_id="aroma", min_amount="1000000000000000")  # 10¹⁵
    assert rate["min_amount"] == "1000000000000000"


def test_limit_1000_is_read_and_1001_refused(coalition):
    assert expect(coalition.get("/api/v1/transactions", query_string={"limit": 1000}), 200)["items"] == []
    response = coalition.get("/api/v1/transactions", query_string={"limit": 1001})
    assert response.status_code == 422
    assert list(response.get_json()["errors"]["query"]) == ["limit"]


def test_a_cursor_of_the_largest_id_is_read_and_one_of_33_digits_refused_as_bad_cursor(coalition):
    assert expect(coalition.get("/api/v1/transactions", query_string={"cursor": str(2**63 - 1)}), 200)["items"] == []
    response = coalition.get("/api/v1/transactions", query_string={"cursor": "1" * 33})
    assert response.status_code == 422
    assert response.get_json()["reason"] == "bad_cursor" and list(response.get_json()["errors"]["query"]) == ["cursor"]


def test_a_request_without_a_key_is_401_asking_for_a_bearer_key(client):
    response = client.get("/api/v1/transactions")
    assert response.status_code == 401
    assert response.get_json()["reason"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_field_validations_message_names_each_field_and_what_is_wrong(coalition):
    """A till that logs only ``message`` learned "Invalid fields" and nothing of which: the
    message now says what ``errors`` says, field by field, and a batch item's the same."""
    body = earn_body(amount=350, currency=None, extra="x")
    answer = assert_error(coalition.post("/api/v1/transactions", json=body), 422)
    by_field = answer["errors"]["json"]
    assert set(by_field) == {"amount", "currency", "extra"}
    assert answer["message"].startswith("Invalid fields: ")
    for field, why in by_field.items():
        assert f"{field}: {' '.join(why)}" in answer["message"]
    assert 'amount: must be a string such as "350.00"' in answer["message"]
    item = expect(coalition.post("/api/v1/transactions/batch", json={"transactions": [body]}), 200)
    assert item["results"][0]["error"] == answer
    query = assert_error(coalition.get("/api/v1/transactions?limit=0"), 422)
    assert query["message"] == "Invalid fields: limit: " + " ".join(query["errors"]["query"]["limit"])
