"""The ``coalition`` command: keys, import, expire and close call the same use cases as the API."""

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from coalition.cli import main
from tests.e2e.settlement_world import small_month


@pytest.fixture
def cli(database_url, monkeypatch):
    monkeypatch.setenv("COALITION_DATABASE_URL", database_url)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def aroma(operator):
    """Кофейня Арома earns 0.1 point per RUB; redemption 0.01 EUR per point."""
    since = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    body = {"id": "aroma", "name": "Кофейня Арома", "category": "cafe", "currency": "RUB"}
    assert operator.post("/api/v1/partners", json=body).status_code == 201
    for rate in ({"kind": "earn", "value": "0.1", "partner_id": "aroma"}, {"kind": "redemption", "value": "0.01"}):
        assert operator.post("/api/v1/rates", json={**rate, "effective_from": since}).status_code == 201


def test_keys_create_prints_a_working_key_as_its_last_line(cli, client):
    result = cli("keys", "create", "--role", "operator")
    key = result.output.strip().splitlines()[-1]
    assert result.exit_code == 0
    assert client.get("/api/v1/settings", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_import_posts_each_row_and_a_rerun_replays(cli, aroma, operator, tmp_path):
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path = tmp_path / "transactions.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency,points\n"
        f"i-1,earn,aroma,card-1,{when},350.00,RUB,\n"  # 350.00 × 0.1 = 35 points
        f"i-2,burn,aroma,card-1,{when},,,20\n"  # 35 − 20 = 15 left
        f"i-3,burn,aroma,card-1,{when},,,500\n",  # more than 15: refused
        encoding="utf-8",
    )
    first = cli("import", str(path))
    again = cli("import", str(path))
    assert "2 created, 0 replayed, 1 failed" in first.output
    assert "0 created, 2 replayed, 1 failed" in again.output
    assert (first.exit_code, again.exit_code) == (1, 1)
    assert operator.get("/api/v1/members/card-1/balance").get_json()["available"] == 15


def test_import_names_the_file_line_of_each_failure_across_slices(
    cli, aroma, operator, tmp_path, monkeypatch
):
    monkeypatch.setattr("coalition.cli.IMPORT_SLICE", 2)
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0).isoformat()
    path = tmp_path / "transactions.csv"
    path.write_text(
        "external_id,type,partner_id,member_id,occurred_at,amount,currency,points,reason\n"
        f"s-1,earn,aroma,card-2,{when},100.00,RUB,,\n"  # line 2: 10 points
        f'"s-2",bonus,aroma,card-2,{when},,,5,"welcome,\nsecond line"\n'  # lines 3-4: 15
        f"s-3,burn,aroma,card-2,{when},,,99,\n"  # line 5: more than 15, refused
        "\n"  # line 6: blank, skipped
        f"s-4,earn,aroma,card-2,{when},20.00,RUB,,\n"  # line 7: 2 points, 17 in all
        f'"s-5",burn,aroma,card-2,{when},,,-4,"a reason\non two lines"\n'  # lines 8-9: refused
        f"s-6,burn,aroma,card-2,{when},,,4,\n",  # line 10: 17 − 4 = 13 left
        encoding="utf-8",
    )
    result = cli("import", str(path))
    failed = sorted(line.split(":")[0] for line in result.output.splitlines() if line.startswith("line "))
    assert failed == ["line 5", "line 8"]
    assert "Importing 6 rows" in result.output
    assert "4 created, 0 replayed, 2 failed" in result.output
    assert operator.get("/api/v1/members/card-2/balance").get_json()["available"] == 13


def test_close_command_closes_the_period_and_issues_statements(cli, operator):
    period_id = small_month(operator)
    result = cli("close", period_id)
    assert result.exit_code == 0
    assert f"closed {period_id}" in result.output
    assert operator.get(f"/api/v1/settlements/{period_id}").get_json()["status"] == "final"
    assert operator.get("/api/v1/statements", query_string={"period_id": period_id}).get_json()["items"]

