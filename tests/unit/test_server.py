"""What ``coalition serve`` says once it listens."""

import pytest

from coalition import server


@pytest.mark.parametrize(
    ("host", "opened"),
    [("0.0.0.0", "http://127.0.0.1:5000"), ("::", "http://[::1]:5000")],
)
def test_a_wildcard_host_is_announced_by_an_address_a_browser_opens(host, opened):
    """It printed http://0.0.0.0:5000, which browsers refuse to open."""
    assert server.banner(host, 5000, "off").splitlines() == [
        f"Coalition on {opened}  (API docs at /api/docs)",
        "Listening on every address of this machine, port 5000",
        "Jobs: off",
    ]


@pytest.mark.parametrize(
    ("host", "opened"),
    [("127.0.0.1", "http://127.0.0.1:8080"), ("10.1.2.3", "http://10.1.2.3:8080"),
     ("fe80::1", "http://[fe80::1]:8080")],
)
def test_one_address_is_announced_as_it_is_served(host, opened):
    assert server.banner(host, 8080, "expiry every 5 min").splitlines() == [
        f"Coalition on {opened}  (API docs at /api/docs)",
        "Jobs: expiry every 5 min",
    ]
