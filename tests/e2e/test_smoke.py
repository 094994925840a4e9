from tests.conftest import days_ago


def test_earn_then_burn(operator):
    r = operator.post("/api/v1/partners", json={"id": "aroma", "name": "Кофейня Арома", "category": "cafe", "currency": "RUB"})
    assert r.status_code == 201, r.json
    r = operator.post("/api/v1/rates", json={"kind": "earn", "value": "0.1", "partner_id": "aroma", "effective_from": days_ago(50)})
    assert r.status_code == 201, r.json
    r = operator.post("/api/v1/rates", json={"kind": "redemption", "value": "0.01", "effective_from": days_ago(50)})
    assert r.status_code == 201, r.json
    r = operator.post("/api/v1/transactions", json={"external_id": "t1", "type": "earn", "partner_id": "aroma", "member_id": "m1", "occurred_at": days_ago(3), "amount": "350.00", "currency": "RUB", "category": "coffee"})
    assert r.status_code == 201, r.json
    print(r.json)
    r = operator.post("/api/v1/transactions", json={"external_id": "t2", "type": "burn", "partner_id": "aroma", "member_id": "m1", "occurred_at": days_ago(1), "points": 20})
    assert r.status_code == 201, r.json
    print(r.json)
    r = operator.get("/api/v1/members/m1/balance")
    print(r.json)
    assert r.json["available"] == 15
