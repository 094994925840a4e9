"""The service in process, through the Flask test client, as the operator: how the
benchmarks that build their data through the API (:mod:`bench.first_lots`,
:mod:`bench.console`) reach it."""

from coalition import auth, create_app, database_of
from coalition.db import migrate


def operator_calls(url: str):
    """``(call, database, key)`` for the database at ``url``, brought to the newest schema
    first, and a new operator key: ``call(method, path, body)`` answers the JSON of a 200
    or 201, and fails the run on any other status."""
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    database = database_of(app)
    migrate.upgrade(database)
    _, key = database.run(lambda session: auth.create_key(session, "operator", None, "bench"))
    client, headers = app.test_client(), {"Authorization": f"Bearer {key}"}

    def call(method: str, path: str, body: dict | None = None) -> dict:
        answer = client.open(path, method=method, json=body, headers=headers)
        assert answer.status_code in (200, 201), answer.get_json()
        return answer.get_json()

    return call, database, key
