"""What a console user waits for at 400 partners: each page, and each change of scope or filter.

``python -m bench.console build URL`` migrates a PostgreSQL database of one's own and
loads, in process through the Flask test client and the batch API, 400 partners in
eight currencies with their earn and fee rates, a redemption rate and the fx rates,
8,000 members and ``--transactions`` earns and burns (60,000) from 1 July 2026 to an
hour ago, then closes July to October. It prints an operator key and a finance key
bound to ``p007``.

``python -m bench.console time BASE KEY [STEP …]`` drives the console served at BASE
(``coalition serve``) in headless Chromium, as the browser tests do, signed in with
KEY. A step is ``name=#/route``; each changes the address as a link or a filter's
*Show* does, and prints one JSON line: the time from the change to the page drawn
(``main`` no longer ``aria-busy``), and the API requests it made, with the bytes of
each and the server's wait (request sent to headers received), from the DevTools
protocol's network events. Without steps, a tour of every page and four changes of
the KPIs' scope and period.

Run old and new code side by side on one database (two ``coalition serve`` on two
ports), in turns, and give the load average beside each figure.
"""

import argparse
import json
import random
import shutil
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench import in_process
from coalition import auth

PARTNERS = 400
MEMBERS = 8_000
# base currency per unit, points per unit and a typical purchase, by currency
CURRENCIES = {
    "EUR": ("1", "2", 40),
    "USD": ("0.92", "2", 45),
    "GBP": ("1.17", "2.3", 35),
    "CZK": ("0.040", "0.08", 1000),
    "PLN": ("0.23", "0.45", 180),
    "SEK": ("0.087", "0.17", 450),
    "RUB": ("0.011", "0.022", 3600),
    "JPY": ("0.0062", "0.012", 6500),
}
NAMES = ("Кофейня", "Shop", "Café", "Hotel", "Gym", "Air", "Bäckerei", "Librería")
HISTORY_FROM = datetime(2026, 7, 1, tzinfo=UTC)
CLOSED = ("2026-07", "2026-08", "2026-09", "2026-10")
TOUR = (
    "periods=#/periods",
    "kpis=#/kpis",
    "scope=#/kpis?period=2026-12&scope=p007",
    "scope2=#/kpis?period=2026-12&scope=p123",
    "period=#/kpis?period=2026-10&scope=p123",
    "coalition=#/kpis?period=2026-10",
    "settlement=#/settlement/2026-10",
    "settlement-open=#/settlement/2026-12",
    "statements=#/statements",
    "statements-all=#/statements?period_id=all",
    "transactions=#/transactions",
    "transactions-chosen=#/transactions?period_id=2026-10&partner_id=p007",
    "partners=#/partners",
    "rates=#/rates",
    "member=#/members/m00042",
    "keys=#/keys",
    "changes=#/changes",
)
CHROMIUM_FLAGS = (  # the console's browser tests' too
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)
# resolves with the milliseconds from the change to the page drawn: main was busy, and is no more
DRAWN = """
const done = arguments[arguments.length - 1];
const main = document.getElementById("main");
const started = performance.now();
let busy = false;
const check = () => {
  if (main.getAttribute("aria-busy") === "true") busy = true;
  if (busy && main.getAttribute("aria-busy") !== "true") { watch.disconnect(); done(performance.now() - started); }
};
const watch = new MutationObserver(check);
watch.observe(main, { attributes: true, childList: true });
window.location.hash = arguments[0];
check();
"""


def build(url: str, transactions: int) -> None:
    call, database, key = in_process.operator_calls(url)
    rng = random.Random(7)
    since = HISTORY_FROM.isoformat()
    call("PUT", "/api/v1/settings", {"max_backdate_days": 200})
    partners = []
    for number in range(PARTNERS):
        partner_id, currency = f"p{number:03d}", list(CURRENCIES)[number % len(CURRENCIES)]
        name = f"{rng.choice(NAMES)} {number}"
        body = {"id": partner_id, "name": name, "category": "shop", "currency": currency}
        call("POST", "/api/v1/partners", body)
        earn = CURRENCIES[currency][1]
        for kind, value in (("earn", earn), ("fee", "0.001")):
            rate = {"kind": kind, "value": value, "partner_id": partner_id}
            call("POST", "/api/v1/rates", {**rate, "effective_from": since})
        partners.append((partner_id, currency))
    call("POST", "/api/v1/rates", {"kind": "redemption", "value": "0.01", "effective_from": since})
    for currency, (fx, _, _) in CURRENCIES.items():
        if currency != "EUR":
            rate = {"kind": "fx", "value": fx, "currency": currency, "effective_from": since}
            call("POST", "/api/v1/rates", rate)
    _post(call, rng, partners, transactions)
    for period_id in CLOSED:
        call("POST", f"/api/v1/settlements/{period_id}/close", None)
    _, finance = database.run(lambda session: auth.create_key(session, "finance", "p007", "bench"))
    print(json.dumps({"operator": key, "finance_p007": finance}))
    database.dispose()


def _post(call, rng: random.Random, partners: list, transactions: int) -> None:
    """Earns at a member's home partner (85 %) or any other, and burns of what they hold
    (less a point an earn, so rounding never makes one refused)."""
    span = (datetime.now(UTC) - timedelta(hours=1) - HISTORY_FROM).total_seconds()
    home = [rng.choice(partners) for _ in range(MEMBERS)]
    held = [0] * MEMBERS
    items = []
    for number, offset in enumerate(sorted(rng.random() * span for _ in range(transactions))):
        occurred_at = (HISTORY_FROM + timedelta(seconds=offset)).isoformat()
        member = rng.randrange(MEMBERS)
        item = {"member_id": f"m{member:05d}", "occurred_at": occurred_at}
        if held[member] > 150 and rng.random() < 0.3:
            points = rng.randint(50, min(held[member], 400))
            held[member] -= points
            partner_id = rng.choice(partners)[0]
            item |= {"external_id": f"b{number}", "type": "burn", "partner_id": partner_id}
            items.append(item | {"points": points})
        else:
            partner_id, currency = home[member] if rng.random() < 0.85 else rng.choice(partners)
            _, earn, typical = CURRENCIES[currency]
            cents = round(typical * rng.uniform(30, 250))  # of the purchase's typical size
            text = str(cents // 100) if currency == "JPY" else f"{cents // 100}.{cents % 100:02d}"
            held[member] += max(0, int(Decimal(text) * Decimal(earn)) - 1)
            item |= {"external_id": f"e{number}", "type": "earn", "partner_id": partner_id}
            items.append(item | {"amount": text, "currency": currency})
        if len(items) == 1000:
            call("POST", "/api/v1/transactions/batch", {"transactions": items})
            items = []
    if items:
        call("POST", "/api/v1/transactions/batch", {"transactions": items})


def chromium_options(binary: str):
    """Headless Chromium's options with :data:`CHROMIUM_FLAGS` (the console's browser
    tests start theirs with them too)."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return options


def tour(base: str, key: str, steps: list[str]) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Debian's chromium and chromium-driver, as the browser tests use them
    options = chromium_options(shutil.which("chromium"))
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(120)
    try:
        driver.get(f"{base}/console/#/start")  # no page: the first step is a change
        driver.execute_script("sessionStorage.setItem('coalition.key', arguments[0])", key)
        for step in steps:
            name, _, route = step.partition("=")
            driver.get_log("performance")
            drawn = driver.execute_async_script(DRAWN, route)
            time.sleep(0.2)  # the last request's loadingFinished
            requests = _requests(driver.get_log("performance"))
            print(
                json.dumps(
                    {
                        "step": name,
                        "drawn_s": round(drawn / 1000, 3),
                        "requests": len(requests),
                        "kB": round(sum(r.get("bytes", 0) for r in requests) / 1024),
                        "server_s": [round(r["wait"], 3) for r in requests if "wait" in r],
                        "paths": [r["url"].removeprefix(base) for r in requests],
                    },
                    ensure_ascii=False,
                ),
                flush=True,
            )
    finally:
        driver.quit()


def _requests(log: list[dict]) -> list[dict]:
    """The API requests of a step, from the DevTools protocol's network events."""
    requests = {}
    for entry in log:
        message = json.loads(entry["message"])["message"]
        method, params = message["method"], message.get("params", {})
        if method == "Network.requestWillBeSent":
            requests.setdefault(params["requestId"], {})["url"] = params["request"]["url"]
        elif method == "Network.responseReceived" and params["response"].get("timing"):
            timing = params["response"]["timing"]
            wait = (timing["receiveHeadersEnd"] - timing["sendEnd"]) / 1000
            requests.setdefault(params["requestId"], {})["wait"] = wait
        elif method == "Network.loadingFinished":
            requests.setdefault(params["requestId"], {})["bytes"] = params["encodedDataLength"]
    return [
        r for r in requests.values() if "/api/" in r.get("url", "") or "/whoami" in r.get("url", "")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="what", required=True)
    building = commands.add_parser("build")
    building.add_argument("url")
    building.add_argument("--transactions", type=int, default=60_000)
    timing = commands.add_parser("time")
    timing.add_argument("base")
    timing.add_argument("key")
    timing.add_argument("steps", nargs="*", default=list(TOUR))
    arguments = parser.parse_args()
    if arguments.what == "build":
        build(arguments.url, arguments.transactions)
    else:
        tour(arguments.base.rstrip("/"), arguments.key, arguments.steps)


if __name__ == "__main__":
    main()
