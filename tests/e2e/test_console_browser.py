"""The web console in a real browser: headless Chromium driven by Selenium.

The app is served by werkzeug on a free port of 127.0.0.1 in a thread, over
the test database, which holds :func:`small_closed_month` (aroma and skyair
trading in the previous month, closed, statements issued). The file starts
one Chromium; each test opens a tab of its own, signs in with a key as a user
would (typing it into the login form) and drives the pages by keyboard and mouse.

Screenshots go to ``$COALITION_SCREENSHOT_DIR`` if set, else to a temporary
directory (its path is printed). Without a chromium binary and its driver the
tests skip, unless ``COALITION_REQUIRE_BROWSER=1`` (CI), when they fail.
``COALITION_SKIP_BROWSER=1`` skips them: the console is the same pages over
either database, so ``.ci/run`` drives them once, over SQLite, the database a
new user's console runs on.
"""

import csv
import io
import json
import os
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select
from werkzeug.serving import make_server

from bench.console import chromium_options
from coalition.db import models
from coalition.services import changes as recorded
from coalition.services import partners
from tests.conftest import Caller
from tests.e2e.helpers import key_ring
from tests.e2e.settlement_world import (
    add_partner,
    add_rate,
    at,
    burn,
    close,
    current_month_id,
    day_in_past,
    earn,
    expect,
    post,
    previous_month,
    small_closed_month,
    small_month,
    statement_of,
    statements,
)

REQUIRED = os.environ.get("COALITION_REQUIRE_BROWSER") == "1"
SKIPPED = os.environ.get("COALITION_SKIP_BROWSER") == "1"
WAIT = 20  # seconds for any page or download


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"COALITION_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of the chromium binary and its driver (Debian: chromium, chromium-driver)."""
    if SKIPPED:
        pytest.skip("COALITION_SKIP_BROWSER=1")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[test]')")
    binary = _find("chromium", "chromium-browser", "google-chrome")
    driver = _find("chromedriver")
    if binary is None or driver is None:
        _unavailable("no chromium binary and chromedriver (apt-get install chromium chromium-driver)")
    return binary, driver


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    directory = Path(os.environ.get("COALITION_SCREENSHOT_DIR") or tmp_path_factory.mktemp("console-screenshots"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots: {directory}")
    return directory


@pytest.fixture
def server(app):
    """The app on a free port of 127.0.0.1, served from a thread until the test ends."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="console-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()


@pytest.fixture
def downloads(tmp_path) -> Path:
    directory = tmp_path / "downloads"
    directory.mkdir()
    return directory


@pytest.fixture(scope="module")
def chromium_driver(chromium):
    """One headless Chromium for the file: starting one costs more than most tests take."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    profile = tempfile.mkdtemp(prefix="coalition-chromium-")
    options = chromium_options(binary)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option("prefs", {"download.prompt_for_download": False, "safebrowsing.enabled": False})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium_driver, downloads):
    """The file's Chromium in a new tab of its own, as if just started.

    Each test serves the console on a port of its own, so a page's storage is
    another origin's; what a test left on its own origin is cleared before the
    tab is closed all the same, in case a later test is given the port again.
    """
    driver = chromium_driver
    previous = driver.current_window_handle
    driver.switch_to.new_window("tab")
    driver.switch_to.window(previous)
    driver.close()
    driver.switch_to.window(driver.window_handles[0])
    driver.set_window_size(1280, 1000)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        _forget_the_page(driver)


def _forget_the_page(driver) -> None:
    """Dismiss a dialog left open, and clear what the page kept in its origin's storage."""
    from selenium.common.exceptions import NoAlertPresentException, WebDriverException

    try:
        driver.switch_to.alert.dismiss()
    except NoAlertPresentException:
        pass
    try:
        driver.execute_script("localStorage.clear(); sessionStorage.clear()")
    except WebDriverException:
        pass  # about:blank, or a download's page, has no storage to clear
    driver.delete_all_cookies()


@pytest.fixture
def month(operator) -> str:
    return small_closed_month(operator)


@pytest.fixture
def two_days(operator) -> tuple[str, str]:
    """Daily periods in Europe/Moscow: three and two days ago, both closed; their ids, older first.

    skyair (EUR) earns 2 points per EUR and aroma (RUB) redeems them at 0.01 EUR a point
    (fx RUB 0.0125 EUR); on each day m1 earns at skyair at 09:00 UTC (12:00 in Moscow) and
    burns at aroma at 10:00 UTC.
    """
    expect(operator.put("/api/v1/settings", json={"period": "daily", "timezone": "Europe/Moscow"}), 200)
    add_partner(operator, "aroma", "Кофейня Арома", "cafe", "RUB")
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_rate(operator, "earn", "2", partner_id="skyair")
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "fx", "0.0125", currency="RUB")
    ids = []
    for days in (3, 2):
        start, period_id = day_in_past(days)
        earn(operator, f"m1-earn-{days}", "skyair", "m1", at(start, 0, 9), "100.00", "EUR")
        burn(operator, f"m1-burn-{days}", "aroma", "m1", at(start, 0, 10), 50)
        ids.append(period_id)
    close(operator, ids[-1])  # and the day before it
    return ids[0], ids[1]


@pytest.fixture
def every_sentence(operator) -> str:
    """:func:`small_month`, and a statement for each way the PDF says who pays whom; closed.

    aroma (RUB) is paid, skyair (EUR) pays; the operator's own account, ``coalition``,
    pays for 400 bonus points that m3 spends at aroma; ``quiet`` (EUR) did nothing;
    ``dinar`` (KWD) pays a fee of 10 × 0.001 = −0.01 EUR, at 40 EUR per KWD (made up: a cent
    must be less than half a fils) −0.00025 KWD = 0.000 KWD.
    """
    period_id = small_month(operator)
    start, _, _ = previous_month()
    add_partner(operator, "quiet", "Quiet Shop", "shop", "EUR")
    add_partner(operator, "dinar", "Dinar Travel", "travel", "KWD")
    add_rate(operator, "earn", "1", partner_id="dinar")
    add_rate(operator, "fx", "40", currency="KWD")
    earn(operator, "m4-earn", "dinar", "m4", at(start, 5), "10.000", "KWD")
    post(operator, external_id="m3-bonus", type="bonus", partner_id="coalition", member_id="m3",
         occurred_at=at(start, 5), points=500, reason="referral")
    burn(operator, "m3-burn", "aroma", "m3", at(start, 6), 400)
    close(operator, period_id)
    return period_id


LONG_NAME = "Магазин «Ромашка» № 00 на улице Большая Садовая, дом 10, корпус 2, строение 1"


@pytest.fixture
def long_name(operator) -> str:
    """:func:`small_month` and ``romashka``, a shop with a long Cyrillic name; closed."""
    period_id = small_month(operator)
    add_partner(operator, "romashka", LONG_NAME, "shop", "RUB")
    close(operator, period_id)
    return period_id


def key_of(caller) -> str:
    return caller.headers["Authorization"].removeprefix("Bearer ")


# --- helpers --------------------------------------------------------------------------------


def wait_for(browser, condition, message: str):
    """Poll ``condition`` until it is truthy; an element replaced by a re-render is polled again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(browser, WAIT, ignored_exceptions=ignored).until(condition, message)


def form_error_saying(browser, words: str = ""):
    """The form's error shown, once it says ``words`` (any, without them)."""
    from selenium.webdriver.common.by import By

    def saying(driver):
        shown = [e for e in driver.find_elements(By.CSS_SELECTOR, ".form-error") if e.is_displayed()]
        return next((e for e in shown if words in e.text), False)

    return wait_for(browser, saying, f"no error saying {words!r}")


def page_loaded(browser, heading: str):
    """Wait until the page's main heading contains ``heading`` and loading is over."""
    from selenium.webdriver.common.by import By

    def ready(driver):
        main = driver.find_element(By.ID, "main")
        if main.get_attribute("aria-busy"):
            return False
        titles = main.find_elements(By.TAG_NAME, "h1")
        return titles[0] if titles and heading in titles[0].text else False

    return wait_for(browser, ready, f"page {heading!r} did not load")


def shot(browser, screenshots: Path, name: str) -> Path:
    """A full-page screenshot (the window grows to the page's height for it)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height, 600) + 40, 4000))
    path = screenshots / f"{name}.png"
    browser.save_screenshot(str(path))
    browser.set_window_size(1280, 1000)
    return path


def sign_in(browser, server: str, key: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{server}/console/")
    field = wait_for(browser, lambda d: d.find_element(By.ID, "api-key"), "no login form")
    field.send_keys(key, Keys.ENTER)
    page_loaded(browser, "Periods")


def go(browser, server: str, route: str, heading: str):
    browser.get(f"{server}/console/#/{route}")
    return page_loaded(browser, heading)


def periods_listed(browser) -> list[str]:
    """The period of each statement listed on the statements page, in order."""
    from selenium.webdriver.common.by import By

    return [row.find_elements(By.TAG_NAME, "td")[1].text
            for row in browser.find_elements(By.CSS_SELECTOR, "main tbody tr")]


def text_of(browser) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, "main").text


# --- served without a browser -------------------------------------------------------------------


def test_console_page_is_served_with_a_strict_content_security_policy(client):
    with client.get("/console/") as response:  # a file response: closed by the block
        assert response.status_code == 200
        assert b'<script type="module" src="static/app.js">' in response.data
        policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_console_without_a_slash_redirects(client):
    response = client.get("/console")
    assert (response.status_code, response.headers["Location"]) == (308, "/console/")


@pytest.mark.parametrize("name", ["app.js", "api.js", "pages.js", "charts.js", "dom.js", "console.css"])
def test_console_assets_are_served(client, name):
    with client.get(f"/console/static/{name}") as response:
        assert response.status_code == 200


def test_whoami_names_the_role_and_partner_of_the_key(make_key, operator):
    expect(operator.post("/api/v1/partners", json={"id": "aroma", "name": "Арома", "category": "cafe",
                                                   "currency": "RUB"}))
    assert expect(make_key("partner", "aroma").get("/console/whoami"), 200) | {"key_id": None} == {
        "key_id": None, "role": "partner", "partner_id": "aroma", "own_partner": "aroma"}
    assert expect(operator.get("/console/whoami"), 200)["own_partner"] is None


def test_whoami_without_a_key_is_unauthorised(client):
    response = client.get("/console/whoami")
    assert (response.status_code, response.get_json()["reason"]) == (401, "unauthenticated")


# --- the operator's journey ---------------------------------------------------------------------


def test_operator_signs_in_and_opens_a_periods_settlement(browser, server, operator, month, screenshots):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    shot(browser, screenshots, "01-periods")
    browser.find_element(By.LINK_TEXT, month).click()
    page_loaded(browser, f"Settlement {month}")
    shot(browser, screenshots, "02-settlement")
    main = text_of(browser)
    assert "FINAL" in main.upper()
    # small_closed_month: aroma nets 22.68 EUR = 1,814.40 RUB; skyair −25.25 EUR
    assert "22.68" in main and "1,814.40 RUB" in main and "−25.25" in main
    bars = browser.find_elements(By.CSS_SELECTOR, "figure.chart g.bar")
    assert len(bars) == 3  # aroma, coalition, skyair


def test_a_long_partner_name_in_the_net_position_chart_keeps_its_beginning_and_fits_its_area(browser, server,
                                                                                          operator, long_name):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, f"settlement/{long_name}", f"Settlement {long_name}")
    (bar,) = [g for g in browser.find_elements(By.CSS_SELECTOR, "figure.chart g.bar")
              if LONG_NAME in g.find_element(By.TAG_NAME, "title").get_attribute("textContent")]  # in full on hover
    label = bar.find_element(By.CSS_SELECTOR, "text.bar-label")
    shown = label.get_attribute("textContent")
    assert shown.endswith("…") and LONG_NAME.startswith(shown.removesuffix("…")) and len(shown) > 10
    box = browser.execute_script("const b = arguments[0].getBBox(); return [b.x, b.x + b.width]", label)
    # the area left of the bars is 200 units wide; 28 letters ran off its left edge, the name's start with them
    assert 0 <= box[0] and box[1] <= 200, box


CHAIN = (3, 4)  # the partners of many_partners that share the name "Outlet"


@pytest.fixture
def many_partners(operator) -> str:
    """22 EUR partners p00–p21 in the previous month, closed; p03 and p04 are both
    "Outlet" (a chain's two shops). Each partner's points are spent at the ten partners
    after it (p21's at p00–p09): member m-i-j earns 100 × (i + 1) + j points at p<i>
    (1 point per EUR) and spends them all at p<j>, so the 220 pair lines' values all
    differ, p21 → p09's 2,209 points at 0.01 EUR (22.09) the largest."""
    start, _, period_id = previous_month()
    for i in range(22):
        add_partner(operator, f"p{i:02d}", "Outlet" if i in CHAIN else f"Partner {i:02d}", "shop", "EUR")
        add_rate(operator, "earn", "1", partner_id=f"p{i:02d}")
    add_rate(operator, "redemption", "0.01")
    add_rate(operator, "fee", "0.001")
    earns, burns = [], []
    for i in range(22):
        for j in ((i + step) % 22 for step in range(1, 11)):
            member, points = f"m-{i}-{j}", 100 * (i + 1) + j
            earns.append({"external_id": f"{member}-earn", "type": "earn", "partner_id": f"p{i:02d}",
                          "member_id": member, "occurred_at": at(start, 1), "amount": f"{points}.00",
                          "currency": "EUR"})
            burns.append({"external_id": f"{member}-burn", "type": "burn", "partner_id": f"p{j:02d}",
                          "member_id": member, "occurred_at": at(start, 2), "points": points})
    for items in (earns, burns):
        results = expect(operator.post("/api/v1/transactions/batch", json={"transactions": items}), 200)
        assert {result["status"] for result in results["results"]} == {201}
    close(operator, period_id)
    return period_id


def test_a_settlement_of_many_partners_charts_the_largest_nets_and_lists_the_largest_pair_lines(
        browser, server, operator, many_partners):
    from selenium.webdriver.common.by import By

    settlement = expect(operator.get(f"/api/v1/settlements/{many_partners}"), 200)
    assert len(settlement["partners"]) == 23 and len(settlement["pair_lines"]) == 220  # coalition too
    by_size = sorted(settlement["partners"], key=lambda p: (-abs(Decimal(p["net"])), p["partner_id"]))
    assert abs(Decimal(by_size[19]["net"])) > abs(Decimal(by_size[20]["net"]))  # no tie at the cut
    named = {p["partner_id"]: f"Outlet ({p['partner_id']})" if p["name"] == "Outlet" else p["name"]
             for p in settlement["partners"]}

    sign_in(browser, server, key_of(operator))
    go(browser, server, f"settlement/{many_partners}", f"Settlement {many_partners}")
    bars = [g.find_element(By.TAG_NAME, "title").get_attribute("textContent")
            for g in browser.find_elements(By.CSS_SELECTOR, "figure.chart g.bar")]
    drawn = sorted(by_size[:20], key=lambda p: (-Decimal(p["net"]), p["partner_id"]))
    assert [bar.split(": ")[0] for bar in bars] == [named[p["partner_id"]] for p in drawn]
    main = text_of(browser)
    assert "The largest 20 of 23 partners by size of net position; the table lists them all." in main
    assert "The 200 largest of 220 pair lines by value" in main

    rows = pair_line_rows(browser)
    assert len(rows) == 200
    assert rows[0] == ["Partner 21", "Partner 09", "2,209", "22.09"]  # 100 × 22 + 9 points
    # the smallest listed: of 220 values, the 200th largest; the 20 below it are p00's and p01's
    assert rows[-1] == ["Partner 02", "Outlet (p03)", "303", "3.03"]


def test_a_settlement_of_a_few_pair_lines_lists_them_as_the_api_orders_them(browser, server, operator, month):
    """Below the page's limit nothing is left out or reordered, and no partner is offered."""
    from selenium.webdriver.common.by import By

    settlement = expect(operator.get(f"/api/v1/settlements/{month}"), 200)
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"settlement/{month}", f"Settlement {month}")
    names = {p["partner_id"]: p["name"] for p in settlement["partners"]}
    # small_closed_month: aroma → skyair 67 points (0.67), skyair → aroma 2,345 (23.45)
    assert pair_line_rows(browser) == [["Кофейня Арома", "SkyAir", "67", "0.67"], ["SkyAir", "Кофейня Арома", "2,345", "23.45"]]
    assert [[names[line["issuer_id"]], names[line["redeemer_id"]]] for line in settlement["pair_lines"]] == [
        ["Кофейня Арома", "SkyAir"], ["SkyAir", "Кофейня Арома"]]
    assert browser.find_elements(By.ID, "partner_id") == []


def test_a_chains_outlets_are_told_apart_wherever_a_partner_is_chosen(browser, server, operator, many_partners):
    """Two partners of one name were two alike choices on KPIs, Transactions and Statements
    (the settlement told them apart already)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    for page, heading, chooser in ((f"kpis?period={many_partners}", "KPIs", "scope"),
                                   ("transactions", "Transactions", "partner_id"),
                                   (f"statements?period_id={many_partners}", "Statements", "partner_id")):
        go(browser, server, page, heading)
        choices = [option.text for option in Select(browser.find_element(By.ID, chooser)).options]
        assert {"Outlet (p03)", "Outlet (p04)", "Partner 05"} <= set(choices), page
        assert "Outlet" not in choices, page
    go(browser, server, f"kpis?period={many_partners}&scope=p04", "KPIs")
    assert "Outlet (p04)" in browser.find_element(By.CSS_SELECTOR, "table.kpi-table thead").get_attribute("textContent")
    partners = browser.find_element(By.XPATH, "//h2[starts-with(., 'Partners in')]/following-sibling::*[1]")
    assert {"Outlet (p03)", "Outlet (p04)"} <= {cell.text for cell in partners.find_elements(By.CSS_SELECTOR, "tbody a")}


def test_a_settlement_lists_every_pair_line_of_the_partner_chosen(browser, server, operator, many_partners):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, f"settlement/{many_partners}", f"Settlement {many_partners}")
    Select(browser.find_element(By.ID, "partner_id")).select_by_visible_text("Outlet (p04)")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(browser, lambda d: "partner_id=p04" in d.current_url, "the address did not keep the choice")
    page_loaded(browser, f"Settlement {many_partners}")
    rows = pair_line_rows(browser)
    # p04 issues to p05–p14 (500 + j points) and redeems from p16–p21 and p00–p03 (100 × (i + 1) + 4)
    issued = {(f"Partner {j:02d}", f"{500 + j}") for j in range(5, 15)}
    redeemed = {(f"Partner {i:02d}" if i != 3 else "Outlet (p03)", f"{100 * (i + 1) + 4:,}")
                for i in (*range(16, 22), 0, 1, 2, 3)}
    assert {(row[1], row[2]) for row in rows if row[0] == "Outlet (p04)"} == issued
    assert {(row[0], row[2]) for row in rows if row[1] == "Outlet (p04)"} == redeemed
    assert len(rows) == 20
    assert "The 200 largest" not in text_of(browser)


def pair_line_rows(browser) -> list[list[str]]:
    """The cells of each row of the settlement page's pair lines table."""
    from selenium.webdriver.common.by import By

    table = browser.find_element(By.XPATH, "//h2[text()='Pair lines']/following::table[1]")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def test_settlement_shows_the_netting_summary_of_the_api(browser, server, operator, month):
    from selenium.webdriver.common.by import By

    netting = expect(operator.get(f"/api/v1/settlements/{month}"), 200)["netting"]
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"settlement/{month}", f"Settlement {month}")
    cards = browser.find_element(By.CSS_SELECTOR, "dl.cards").text
    # gross 23.45 + 0.67 = 24.12 EUR, as the API says
    assert f"{netting['gross']} EUR" == "24.12 EUR"
    assert "24.12 EUR" in cards


def downloaded(browser, downloads: Path, name: str) -> Path:
    """The file the browser saved as ``name``, once it is whole."""
    def saved(_):
        path = downloads / name
        return path if path.exists() and path.stat().st_size > 0 else False

    path = wait_for(browser, saved, f"{name} was not downloaded: {sorted(os.listdir(downloads))}")
    time.sleep(0.2)  # let chromium finish renaming and flushing
    return path


def test_the_statements_page_names_each_partner_by_its_id_too(browser, server, operator, month):
    """Names need not be unique (a chain's outlets): each row carries the partner's id."""
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, f"statements?period_id={month}", "Statements")
    partners = [row.find_elements(By.TAG_NAME, "td")[2] for row in browser.find_elements(By.CSS_SELECTOR, "main tbody tr")]
    # small_closed_month's statements by number: aroma, coalition, skyair
    assert [cell.find_element(By.CSS_SELECTOR, "small.id").text for cell in partners] == ["aroma", "coalition", "skyair"]
    assert partners[0].text.startswith("Кофейня Арома")


def test_operator_downloads_a_statement_pdf(browser, server, operator, month, downloads, screenshots):
    from selenium.webdriver.common.by import By

    statement = statement_of(operator, "aroma", month)
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"statements?period_id={month}", "Statements")
    shot(browser, screenshots, "03-statements")
    label = f"Download statement {statement['number']} as PDF"
    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="{label}"]').click()
    expected = f"coalition-statement-{statement['number']}-aroma.pdf"
    content = downloaded(browser, downloads, expected).read_bytes()
    assert content.startswith(b"%PDF")
    assert content == operator.get(f"/api/v1/statements/{statement['id']}/pdf").data
    wait_for(browser, lambda d: f"Downloaded {expected}" in d.find_element(By.ID, "notice").text, "no notice")


def test_operator_downloads_a_settlement_as_csv(browser, server, operator, month, downloads):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, f"settlement/{month}", "Settlement")
    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="Download the settlement of {month} as CSV"]').click()
    expected = f"coalition-settlement-{month}-final.csv"
    content = downloaded(browser, downloads, expected).read_bytes()
    assert content == operator.get(f"/api/v1/settlements/{month}/csv").data
    wait_for(browser, lambda d: f"Downloaded {expected}" in d.find_element(By.ID, "notice").text, "no notice")


def test_a_statement_page_downloads_the_partners_transactions_of_its_period(browser, server, operator, month,
                                                                          downloads):
    from selenium.webdriver.common.by import By

    statement = statement_of(operator, "aroma", month)
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"statement/{statement['id']}", f"Statement {statement['number']}")
    label = f"Download Кофейня Арома's transactions of {month} as CSV"
    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="{label}"]').click()
    expected = f"coalition-transactions-{month}-aroma.csv"
    content = downloaded(browser, downloads, expected).read_bytes()
    query = {"period_id": month, "partner_id": "aroma"}
    assert content == operator.get("/api/v1/transactions/csv", query_string=query).data
    assert {row["partner_id"] for row in csv.DictReader(io.StringIO(content.decode()))} == {"aroma"}


def transactions_shown(browser) -> list[tuple[str, str, str]]:
    """(partner, type, external id) of each transaction the transactions page lists, in order."""
    from selenium.webdriver.common.by import By

    rows = [row.find_elements(By.TAG_NAME, "td") for row in browser.find_elements(By.CSS_SELECTOR, "main tbody tr")]
    return [(cells[1].text, cells[2].text, cells[4].text) for cells in rows]


def test_the_transactions_page_lists_the_newest_of_a_choice_and_downloads_them_all(browser, server, operator,
                                                                                  month, downloads, screenshots):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, f"transactions?period_id={month}&partner_id=aroma", "Transactions")
    shot(browser, screenshots, "15-transactions")
    # small_month: aroma's burn of m1's points, then m2's earn there; newest first
    assert transactions_shown(browser) == [("aroma", "earn", "m2-earn"), ("aroma", "burn", "m1-burn")]
    assert "−2,345" in text_of(browser) and "1,000.00" in text_of(browser)
    # each names the key that posted it: the operator's, which has no name, by its id
    [operators] = expect(operator.get("/api/v1/keys", query_string={"role": "operator"}), 200)
    rows = browser.find_elements(By.CSS_SELECTOR, "main tbody tr")
    assert [row.find_elements(By.TAG_NAME, "td")[-1].text for row in rows] == [operators["id"]] * 2
    browser.find_element(By.CSS_SELECTOR, 'button[aria-label="Download every transaction of this choice as CSV, in posting order, a row per points movement"]').click()
    expected = f"coalition-transactions-{month}-aroma.csv"
    content = downloaded(browser, downloads, expected).read_bytes()
    query = {"period_id": month, "partner_id": "aroma"}
    assert content == operator.get("/api/v1/transactions/csv", query_string=query).data


def test_the_transactions_page_filters_by_type_and_keeps_the_choice_in_its_address(browser, server, operator,
                                                                                  month):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "transactions", "Transactions")
    assert len(transactions_shown(browser)) == 4  # two earns and two burns, every partner, every period
    Select(browser.find_element(By.ID, "type")).select_by_value("burn")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(browser, lambda d: "type=burn" in d.current_url, "the address did not keep the choice")
    page_loaded(browser, "Transactions")
    assert transactions_shown(browser) == [("skyair", "burn", "m2-burn"), ("aroma", "burn", "m1-burn")]


def test_the_transactions_page_shows_a_choice_its_address_names_that_is_not_among_its_options(browser, server,
                                                                                             operator, month):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "transactions?period_id=2020-01&partner_id=nobody", "Transactions")
    assert Select(browser.find_element(By.ID, "period_id")).first_selected_option.text == "2020-01"
    assert Select(browser.find_element(By.ID, "partner_id")).first_selected_option.text == "nobody"
    assert transactions_shown(browser) == []
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()  # kept, not dropped
    wait_for(browser, lambda d: "period_id=2020-01" in d.current_url and "partner_id=nobody" in d.current_url,
             "the choice was dropped")


def test_a_partner_key_sees_its_own_transactions_and_no_partner_choice(browser, server, make_key, month):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(make_key("partner", "skyair")))
    go(browser, server, "transactions", "Transactions")
    assert transactions_shown(browser) == [("skyair", "burn", "m2-burn"), ("skyair", "earn", "m1-earn")]
    assert not browser.find_elements(By.ID, "partner_id")
    assert "m1-burn" not in text_of(browser)


def test_a_download_by_keyboard_keeps_the_focus_on_its_button(browser, server, operator, month, downloads):
    """The button was disabled while it fetched, which dropped the focus to the page: a
    screen reader's user lost their place in the list."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    statement = statement_of(operator, "aroma", month)
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"statements?period_id={month}", "Statements")
    label = f"Download statement {statement['number']} as CSV"
    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="{label}"]').send_keys(Keys.ENTER)
    wait_for(browser, lambda d: "Downloaded " in d.find_element(By.ID, "notice").text, "no notice")
    assert browser.execute_script("return document.activeElement.getAttribute('aria-label')") == label


def test_statements_of_all_periods_are_listed_when_chosen_and_the_address_keeps_the_choice(browser, server, operator,
                                                                                       two_days):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    older, newer = two_days
    sign_in(browser, server, key_of(operator))
    go(browser, server, "statements", "Statements")  # no choice made: the newest closed period
    assert set(periods_listed(browser)) == {newer}
    Select(browser.find_element(By.ID, "period_id")).select_by_visible_text("All periods")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(browser, lambda d: "period_id=all" in d.current_url, "the address does not keep the choice")
    browser.refresh()  # as a bookmark opens it
    page_loaded(browser, "Statements")
    listed = periods_listed(browser)
    every = statements(operator)
    assert len(listed) == len(every) == 6  # aroma, coalition and skyair on each day; it listed the newest 3
    assert listed == sorted(listed, reverse=True) and set(listed) == {older, newer}  # newest first
    assert Select(browser.find_element(By.ID, "period_id")).first_selected_option.text == "All periods"


def test_statements_of_a_period_without_any_keep_that_period_chosen(browser, server, operator, month):
    """A period the address names that has no statements (open, or none such): the list says
    there are none, and the Period box read "All periods", against the filter applied."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    this_month = current_month_id()  # open
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"statements?period_id={this_month}", "Statements")
    assert "No statements for this choice" in text_of(browser)
    assert Select(browser.find_element(By.ID, "period_id")).first_selected_option.get_attribute("value") == this_month


def test_enter_on_a_filters_drop_down_shows_the_choice(browser, server, operator, two_days):
    """The forms submit with Enter (docs/console.md); from a drop-down it did nothing."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    older, newer = two_days
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"statements?period_id={newer}", "Statements")
    chooser = browser.find_element(By.ID, "period_id")
    Select(chooser).select_by_value(older)
    chooser.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: d.current_url.endswith(f"#/statements?period_id={older}"), "the choice was not shown")
    page_loaded(browser, "Statements")
    assert periods_listed(browser) == [older] * 3  # aroma, coalition and skyair


def test_enter_on_the_rates_filters_drop_down_shows_the_choice(browser, server, operator, month):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "rates", "Rates")
    chooser = browser.find_element(By.ID, "kind")
    Select(chooser).select_by_value("earn")
    chooser.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: "kind=earn" in d.current_url, "the choice was not shown")


def test_more_statements_than_the_page_reads_show_the_newest_and_say_so(browser, server, operator, database,
                                                                         month):
    """All periods of a large coalition: the page read every statement, each with its
    counterparties, in one answer. A thousand more statements of the month, one for each
    of a thousand partners added to the database, are the newest."""
    first = database.run(lambda session: session.scalars(select(models.Statement)).first())
    body = json.loads(first.body)
    now = datetime.now(UTC)
    ids = [f"shop-{n:04}" for n in range(1, 1001)]
    numbers = [f"{month}-{n + 3:04}" for n in range(1, 1001)]  # after the month's own three
    partners = [{"id": partner, "name": partner, "category": "shop", "currency": "EUR", "hold_days": 0,
                 "status": "active", "created_at": now} for partner in ids]
    copies = [{"number": number, "period_id": month, "partner_id": partner, "issued_at": now,
               "sha256": first.sha256, "body": json.dumps({**body, "number": number, "partner_id": partner})}
              for partner, number in zip(ids, numbers, strict=True)]
    database.run(lambda session: (session.execute(insert(models.Partner), partners),
                                  session.execute(insert(models.Statement), copies)))
    sign_in(browser, server, key_of(operator))
    go(browser, server, "statements?period_id=all", "Statements")
    listed = browser.execute_script(
        "return [...document.querySelectorAll('main tbody tr')].map((row) => row.cells[0].innerText);")
    assert listed == numbers  # the month's own three, the oldest, are left out
    assert "Showing the newest 1,000 statements: choose a period or a partner for older ones." in text_of(browser)
    go(browser, server, "statements?period_id=all&partner_id=aroma", "Statements")  # fewer: all of them
    assert periods_listed(browser) == [month]
    assert "Showing the newest" not in text_of(browser)


@pytest.mark.parametrize("partner_id", ["aroma", "skyair", "coalition", "quiet", "dinar"],
                         ids=["paid in its currency", "pays", "the operators own account", "nothing", "less than a fils"])
def test_a_statement_says_who_pays_whom_as_its_pdf_does(browser, server, operator, every_sentence, partner_id):
    from selenium.webdriver.common.by import By

    from reports.statement import _settlement_sentence

    statement = statement_of(operator, partner_id, every_sentence)
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"statement/{statement['id']}", f"Statement {statement['number']}")
    said = browser.find_element(By.CSS_SELECTOR, "main .summary-box").get_attribute("textContent")
    # the console's minus is typographic, as everywhere on its pages
    assert said.replace("\u00a0", " ").replace("\u2212", "-") == _settlement_sentence(statement).replace("\xa0", " ")
    # the name set apart, as the PDF sets an Arabic or Hebrew one apart: a figure after it stays after it
    named = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "main .summary-box bdi")]
    assert named == ([statement["partner_name"]] if statement["partner_name"] in said else [])


def test_the_periods_page_shows_a_period_as_the_days_it_covers_in_the_coalitions_time_zone(browser, server, operator,
                                                                                          two_days):
    from selenium.webdriver.common.by import By

    from reports.written import period_dates

    _, newer = two_days
    period = next(p for p in expect(operator.get("/api/v1/periods"), 200) if p["id"] == newer)
    sign_in(browser, server, key_of(operator))
    row = browser.find_element(By.XPATH, f"//main//tbody/tr[td[1]='{newer}']")
    # as the statement PDF prints it, the zone named once above: it was "… 21:00 UTC – … 21:00 UTC"
    expected = period_dates(period["start"], period["end"], "Europe/Moscow")
    assert row.find_elements(By.TAG_NAME, "td")[1].text == expected.removesuffix(" (Europe/Moscow)")
    assert "Europe/Moscow" in browser.find_element(By.CSS_SELECTOR, "main caption").text


def test_the_settlement_page_shows_its_period_as_the_days_it_covers(browser, server, operator, two_days):
    from selenium.webdriver.common.by import By

    from reports.written import period_dates

    _, newer = two_days
    result = expect(operator.get(f"/api/v1/settlements/{newer}"), 200)
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"settlement/{newer}", f"Settlement {newer}")
    lead = browser.find_element(By.CSS_SELECTOR, "main p.lead").text
    assert lead.startswith(f"{period_dates(result['start'], result['end'], 'Europe/Moscow')}. ")


def test_the_settlement_page_of_a_draft_says_which_fx_rates_a_close_needs(browser, server, operator, two_days):
    from selenium.webdriver.common.by import By

    add_partner(operator, "hotel", "Grand Hotel Praha", "travel", "CZK")
    start, today = day_in_past(0)
    add_rate(operator, "earn", "0.2", effective_from=at(start, 0, 0, 1), partner_id="hotel")
    earn(operator, "hotel-earn", "hotel", "m2", at(start, 0, 0, 2), "200.00", "CZK")  # no CZK rate
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"settlement/{today}", f"Settlement {today}")
    lead = browser.find_element(By.CSS_SELECTOR, "main p.lead").text
    assert lead.endswith("Closing it needs an fx rate at the period's end for CZK.")


def test_a_statement_page_shows_what_the_fees_are_made_of(browser, server, operator, month):
    from selenium.webdriver.common.by import By

    statement = statement_of(operator, "skyair", month)  # small_month: 2468 points at 0.001 EUR
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"statement/{statement['id']}", f"Statement {statement['number']}")
    (fees,) = [card for card in browser.find_elements(By.CSS_SELECTOR, "dl.cards .card")
               if card.find_element(By.TAG_NAME, "dt").get_attribute("textContent") == "Fees"]
    note = fees.find_element(By.CSS_SELECTOR, "dd.note").get_attribute("textContent")
    assert note.replace("\u00a0", " ") == "2,468 × 0.001 EUR"


def test_a_statement_page_shows_its_period_as_its_pdf_does_to_a_partner_key(browser, server, make_key, operator,
                                                                          two_days):
    from selenium.webdriver.common.by import By

    from reports.written import period_dates

    _, newer = two_days
    statement = statement_of(operator, "aroma", newer)
    # a partner key may not read the settings: the statement names its zone
    sign_in(browser, server, key_of(make_key("partner", "aroma")))
    go(browser, server, f"statement/{statement['id']}", f"Statement {statement['number']}")
    lead = browser.find_element(By.CSS_SELECTOR, "main p.lead").text
    covers = period_dates(statement["period_start"], statement["period_end"], statement["timezone"])
    assert statement["timezone"] == "Europe/Moscow" and f"period {newer}, {covers} · " in lead


def test_operator_adds_a_rate_through_the_form(browser, server, operator, month, screenshots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "rates", "Rates")
    Select(browser.find_element(By.ID, "rate-kind")).select_by_value("redemption")
    browser.find_element(By.ID, "rate-value").send_keys("0.02")
    Select(browser.find_element(By.ID, "rate-partner")).select_by_value("skyair")
    shot(browser, screenshots, "04-rate-form")
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-rate] button[type=submit]").click()
    wait_for(browser, lambda d: "added" in d.find_element(By.ID, "notice").text, "no confirmation")
    page_loaded(browser, "Rates")
    shot(browser, screenshots, "05-rate-added")
    listed = expect(operator.get("/api/v1/rates", query_string={"kind": "redemption", "partner_id": "skyair"}), 200)
    assert [rate["value"] for rate in listed] == ["0.02"]


def test_an_api_error_message_is_shown_in_the_form(browser, server, operator, month, screenshots):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, "rates", "Rates")
    # an earn rate without a partner: the API refuses it with 422 and a message
    browser.find_element(By.ID, "rate-value").send_keys("3")
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-rate] button[type=submit]").click()
    error = form_error_saying(browser)
    shot(browser, screenshots, "06-rate-error")
    assert error.text.count("an earn rate needs a partner_id") == 1  # the field's error is the message


def test_a_rate_without_its_start_says_the_field_is_needed(browser, server, operator, month):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, "rates", "Rates")
    browser.find_element(By.ID, "rate-value").send_keys("3")
    browser.execute_script("document.getElementById('rate-from').value = ''")
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-rate] button[type=submit]").click()
    error = form_error_saying(browser)
    assert error.text == "Effective from: enter a date and time."  # it said "undefined is not a date and time"


def skyair_rate_from(browser, operator, wall_clock: str) -> dict:
    """An earn rate of 2 for skyair added with the form of the Rates page shown, from
    ``wall_clock`` as typed ("2026-11-01T00:00"); the rate as the API lists it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "rate-partner")).select_by_value("skyair")
    browser.find_element(By.ID, "rate-value").send_keys("2")
    browser.execute_script("document.getElementById('rate-from').value = arguments[0]", wall_clock)
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-rate] button[type=submit]").click()
    wait_for(browser, lambda d: "added" in d.find_element(By.ID, "notice").text, "no confirmation")
    [rate] = expect(operator.get("/api/v1/rates", query_string={"kind": "earn", "partner_id": "skyair"}), 200)
    return rate


def test_a_rates_start_is_read_in_the_coalitions_time_zone_not_the_browsers(browser, server, operator):
    """An operator in New York adds a Tokyo coalition's rate from midnight, as its periods begin:
    the form read it at New York's midnight, 14 hours later, and the till's earns of those hours
    were no_rate (or, a rate typed from the first day after a closed period, began in it: 409)."""
    from selenium.webdriver.common.by import By

    expect(operator.put("/api/v1/settings", json={"timezone": "Asia/Tokyo"}), 200)
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    sign_in(browser, server, key_of(operator))
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    go(browser, server, "rates", "Rates")
    assert browser.execute_script("return Intl.DateTimeFormat().resolvedOptions().timeZone") == "America/New_York"
    assert "Asia/Tokyo" in browser.find_element(By.ID, "rate-from-hint").text
    tokyo = ZoneInfo("Asia/Tokyo")
    tomorrow = datetime.now(tokyo).date() + timedelta(days=1)
    rate = skyair_rate_from(browser, operator, f"{tomorrow}T00:00")
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=tokyo)  # 15:00 UTC the day before
    assert datetime.fromisoformat(rate["effective_from"]) == midnight


def test_the_rate_form_is_not_offered_while_the_coalitions_time_zone_cannot_be_read(browser, server, operator,
                                                                                   monkeypatch):
    """The form reads its times in the coalition's zone; it fell back to UTC, named as the
    coalition's, when the settings could not be read, and a Tokyo coalition's rate typed from
    midnight began nine hours into the period."""
    from selenium.webdriver.common.by import By

    from coalition.db import Unavailable
    from coalition.services import settings

    expect(operator.put("/api/v1/settings", json={"timezone": "Asia/Tokyo"}), 200)
    sign_in(browser, server, key_of(operator))
    with monkeypatch.context() as patched:
        patched.setattr(settings, "load", lambda session: (_ for _ in ()).throw(Unavailable("away")))
        go(browser, server, "rates", "Could not load this page")
        assert "Add a rate" not in text_of(browser)
    browser.find_element(By.XPATH, "//main//button[text()='Try again']").click()
    page_loaded(browser, "Rates")
    assert "in Asia/Tokyo, the coalition's time zone" in text_of(browser)


@pytest.mark.parametrize(
    ("zone", "day"),
    [("America/Santiago", "2026-09-06"),  # the clocks go from 00:00 to 01:00: no midnight
     ("Asia/Amman", "2021-10-29")],  # from 01:00 back to 00:00, east of UTC: two midnights
)
def test_a_rate_from_a_midnight_the_clocks_skip_or_pass_twice_starts_with_its_days_period(
        browser, server, operator, zone, day):
    """The service's day begins at the first instant its wall clock reads that day (zoneinfo's
    fold 0). The form read "00:00" in the gap at the offset after it, in the day before (a 409
    where that day was closed), and the repeated midnight east of UTC at its second passing, an
    hour into the day, whose earns were no_rate; 88 of the 172 such midnights of 2018-2027."""
    expect(operator.put("/api/v1/settings", json={"timezone": zone, "period": "daily"}), 200)
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    sign_in(browser, server, key_of(operator))
    go(browser, server, "rates", "Rates")
    rate = skyair_rate_from(browser, operator, f"{day}T00:00")
    start = expect(operator.get(f"/api/v1/settlements/{day}"), 200)["start"]
    assert datetime.fromisoformat(rate["effective_from"]) == datetime.fromisoformat(start)


@pytest.mark.parametrize("route", ["statement/abc", "statement/"])
def test_a_statement_address_without_a_number_says_there_is_no_such_statement(browser, server, operator, month,
                                                                              route):
    sign_in(browser, server, key_of(operator))
    go(browser, server, route, "Not found")  # it showed werkzeug's page text, or asked for statement "null"
    assert "statements are numbered" in text_of(browser)


@pytest.mark.parametrize("route, heading", [("statement/999999", "Not found"), ("settlement/2099-01", "Not found"),
                                            ("partner/", "Not found"), ("kpis?period=2026-13", "Could not load")])
def test_a_page_the_api_refuses_as_asked_offers_no_retry(browser, server, operator, month, route, heading):
    """It offered Try again, as for an outage, where asking again is refused again (404, 422)."""
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, route, heading)
    assert browser.find_elements(By.XPATH, "//main//button[text()='Try again']") == []


@pytest.mark.parametrize("route", ["setting", "key", "rate"])
def test_a_mistyped_page_marks_no_item_of_the_navigation_current(browser, server, operator, month, route):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, route, "Not found")
    assert browser.find_elements(By.CSS_SELECTOR, '#nav a[aria-current="page"]') == []


def test_a_database_away_is_told_in_the_consoles_words_and_can_be_tried_again(browser, server, operator, month,
                                                                              monkeypatch):
    """The API's 503 message goes on to tell a till how a retried posting is answered, which
    means nothing to a finance reader."""
    from selenium.webdriver.common.by import By

    from coalition.db import Unavailable

    sign_in(browser, server, key_of(operator))
    with monkeypatch.context() as patched:
        patched.setattr(partners, "all_partners", lambda session: (_ for _ in ()).throw(Unavailable("away")))
        go(browser, server, "partners", "Could not load this page")
        assert ("The service could not get to its database just now (out of reach, or busy with other work"
                " such as closing a period): try again in a moment.") in text_of(browser)
        assert "external_id" not in text_of(browser)
    browser.find_element(By.XPATH, "//main//button[text()='Try again']").click()
    page_loaded(browser, "Partners")
    assert "SkyAir" in text_of(browser)


def test_a_service_that_cannot_be_reached_keeps_the_key_and_the_page_can_be_tried_again(browser, server, operator,
                                                                                       month, screenshots):
    from selenium.webdriver.common.by import By

    key = key_of(operator)
    sign_in(browser, server, key)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/console/whoami", "*/api/v1/*"]})
    browser.refresh()  # a reload asks the service who the key is: no answer comes
    page_loaded(browser, "Could not load this page")
    shot(browser, screenshots, "12-service-unreachable")
    assert "The service cannot be reached" in text_of(browser)
    assert browser.execute_script("return sessionStorage.getItem('coalition.key')") == key  # it signed out
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    browser.find_element(By.XPATH, "//main//button[text()='Try again']").click()
    page_loaded(browser, "Periods")
    assert month in text_of(browser)


def test_a_page_that_cannot_reach_the_service_after_signing_in_can_be_tried_again(browser, server, operator, month):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/api/v1/*"]})
    browser.find_element(By.LINK_TEXT, "Partners").click()  # the key's role is known: only the page fails
    page_loaded(browser, "Could not load this page")
    assert "The service cannot be reached" in text_of(browser)
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    browser.find_element(By.XPATH, "//main//button[text()='Try again']").click()  # there was none
    page_loaded(browser, "Partners")
    assert "SkyAir" in text_of(browser)


def add_partner_in_the_form(browser, server, operator, partner_id, name, category, currency):
    """Sign in as the operator and add a partner on the Partners page; wait until it is listed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "partners", "Partners")
    browser.find_element(By.ID, "id").send_keys(partner_id)
    browser.find_element(By.ID, "name").send_keys(name)
    Select(browser.find_element(By.ID, "category")).select_by_value(category)
    browser.find_element(By.ID, "currency").send_keys(currency)
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-partner] button[type=submit]").click()
    wait_for(browser, lambda d: name in d.find_element(By.ID, "main").text, "partner not listed")


@pytest.mark.parametrize("typed", ["7-", "1e"])
def test_hold_days_that_are_not_a_whole_number_are_refused_in_the_form_as_typed(browser, server, operator, month,
                                                                                  typed):
    """A number field hands the page "" for what it cannot read ("7-", "1e"): the form left the
    field out and the partner was added with the API's default hold of 0 days, its return window lost."""
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, "partners", "Partners")
    for field_id, text in [("id", "bakery"), ("name", "Bakery"), ("currency", "EUR")]:
        browser.find_element(By.ID, field_id).send_keys(text)
    hold = browser.find_element(By.ID, "hold_days")
    hold.clear()
    hold.send_keys(typed)
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-partner] button[type=submit]").click()
    error = form_error_saying(browser, "hold_days: must be a whole number")  # the API's 422 for the field
    assert error.text.count("hold_days:") == 1  # in the message, which names the field, once
    assert browser.find_element(By.ID, "hold_days").get_attribute("value") == typed  # kept as typed
    expect(operator.get("/api/v1/partners/bakery"), 404)


def test_each_field_a_422_refuses_is_marked_with_its_words_under_it(browser, server, operator, month, screenshots):
    """The form said them all in one line above its button, by the API's names (\"id: must be a slug…;
    currency: …\"): in a grid of fields the operator had to find which box was \"id\", and a screen
    reader on the field heard nothing wrong with it."""
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, "partners", "Partners")
    for field_id, text in [("id", "Bakery Nr 1"), ("name", "Bakery"), ("currency", "EU")]:
        browser.find_element(By.ID, field_id).send_keys(text)
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-partner] button[type=submit]").click()
    form_error_saying(browser, "Invalid fields")
    shot(browser, screenshots, "07-partner-fields-refused")

    def refused(field_id: str) -> tuple[str | None, list[str]]:
        control = browser.find_element(By.ID, field_id)
        described = (control.get_attribute("aria-describedby") or "").split()
        box = control.find_element(By.XPATH, "..")  # the field's own box, with its label and hint
        notes = [note.text for note in box.find_elements(By.CSS_SELECTOR, ".field-error")
                 if note.get_attribute("id") in described]
        return control.get_attribute("aria-invalid"), notes

    assert refused("id") == ("true", ["must be a slug: a-z, 0-9 and '-', 2 to 63 characters"])
    assert refused("currency") == ("true", ["must be an ISO 4217 code"])
    assert refused("name") == (None, [])
    assert "id-hint" in browser.find_element(By.ID, "id").get_attribute("aria-describedby")  # its hint is read still
    browser.find_element(By.ID, "id").clear()
    browser.find_element(By.ID, "id").send_keys("bakery")
    browser.find_element(By.ID, "currency").send_keys("X")
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-partner] button[type=submit]").click()
    form_error_saying(browser, "'EUX' is not an ISO 4217 currency")  # a rule of one field: marked there too
    assert refused("id") == (None, [])  # what the next answer does not refuse is no longer marked
    assert refused("currency") == ("true", ["'EUX' is not an ISO 4217 currency"])


def test_a_negative_whole_number_is_sent_as_a_number_for_the_apis_range(browser, server, operator, month):
    """"-5" was sent as text, and the API's answer said it was not a whole number, written in the
    digits 0-9, where what is wrong with it is that it is below 1."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, server, key_of(operator))
    go(browser, server, "settings", "Settings")
    backdating = browser.find_element(By.ID, "max_backdate_days")
    backdating.clear()
    backdating.send_keys("-5", Keys.ENTER)
    error = form_error_saying(browser, "max_backdate_days")
    assert "must be at least 1 and at most 3650" in error.text and "must be a whole number" not in error.text


def open_partner(browser, server, caller, partner_id: str, name: str) -> None:
    """Sign in and open a partner's page from the Partners page, by its id."""
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(caller))
    go(browser, server, "partners", "Partners")
    browser.find_element(By.CSS_SELECTOR, f'a[aria-label="Partner {partner_id}"]').click()
    page_loaded(browser, name)


def submit_partner_change(browser):
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=change-partner] button[type=submit]").click()


def test_the_operator_changes_a_partners_hold_and_suspends_it_once_asked(browser, server, operator, month,
                                                                         screenshots):
    """The console added partners and changed none: a hold or a suspension took the API."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    open_partner(browser, server, operator, "skyair", "SkyAir")
    hold = browser.find_element(By.ID, "hold_days")
    hold.clear()
    hold.send_keys("3")
    Select(browser.find_element(By.ID, "status")).select_by_value("suspended")
    shot(browser, screenshots, "13-partner-change")
    submit_partner_change(browser)
    asked = WebDriverWait(browser, 5).until(expected_conditions.alert_is_present())
    assert asked.text.startswith("Suspend SkyAir?")
    asked.dismiss()  # nothing is sent
    skyair = expect(operator.get("/api/v1/partners/skyair"), 200)
    assert (skyair["hold_days"], skyair["status"]) == (0, "active")
    submit_partner_change(browser)
    WebDriverWait(browser, 5).until(expected_conditions.alert_is_present()).accept()
    wait_for(browser, lambda d: "changed: hold_days 3, status suspended" in d.find_element(By.ID, "notice").text,
             "no confirmation")
    page_loaded(browser, "Partners")
    skyair = expect(operator.get("/api/v1/partners/skyair"), 200)
    assert (skyair["hold_days"], skyair["status"]) == (3, "suspended")


def test_a_partner_change_the_api_refuses_shows_its_message_and_one_without_changes_sends_nothing(
        browser, server, operator, month):
    from selenium.webdriver.common.by import By

    open_partner(browser, server, operator, "skyair", "SkyAir")
    submit_partner_change(browser)
    assert form_error_saying(browser, "Nothing to change").text == "Nothing to change: every field is as it was."
    browser.find_element(By.ID, "currency").clear()
    browser.find_element(By.ID, "currency").send_keys("usd")
    submit_partner_change(browser)
    refusal = form_error_saying(browser, "fixed once it has transactions")
    assert browser.switch_to.active_element == refusal  # the focus goes to the refusal, not to the page
    assert browser.find_element(By.ID, "currency").get_attribute("value") == "usd"  # kept as typed
    assert expect(operator.get("/api/v1/partners/skyair"), 200)["currency"] == "EUR"


def test_a_name_stored_with_spaces_around_it_is_no_change_when_the_hold_is(browser, server, operator, database,
                                                                           month):
    """The form sends what it trims: compared with the name as stored, it read as a rename."""
    from selenium.webdriver.common.by import By

    database.run(partners.update, "skyair", {"name": "SkyAir "})  # as the API keeps it
    open_partner(browser, server, operator, "skyair", "SkyAir")
    hold = browser.find_element(By.ID, "hold_days")
    hold.clear()
    hold.send_keys("2")
    submit_partner_change(browser)
    wait_for(browser, lambda d: "changed: hold_days 2." in d.find_element(By.ID, "notice").text, "no confirmation")
    skyair = expect(operator.get("/api/v1/partners/skyair"), 200)
    assert (skyair["name"], skyair["hold_days"]) == ("SkyAir ", 2)


def test_a_forms_hints_are_read_with_their_controls(browser, server, operator, month):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, "settings", "Settings")
    described = browser.find_element(By.ID, "base_currency").get_attribute("aria-describedby")
    assert browser.find_element(By.ID, described).text.endswith("fixed once the ledger has started")


def test_a_finance_key_reads_a_partners_page_and_is_offered_no_change(browser, server, make_key, month):
    from selenium.webdriver.common.by import By

    finance = make_key("finance")
    open_partner(browser, server, finance, "aroma", "Кофейня Арома")
    assert "settles in RUB" in text_of(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "form[aria-labelledby=change-partner]") == []


def test_the_operator_changes_the_settings_it_may_and_is_told_why_not_the_calendar(browser, server, operator,
                                                                                   month, screenshots):
    """Settings were read and changed through the API only."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "settings", "Settings")
    shot(browser, screenshots, "14-settings")
    for name, value in [("points_ttl_days", "180"), ("auto_close_after_hours", "24")]:
        browser.find_element(By.ID, name).clear()
        browser.find_element(By.ID, name).send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=change-settings] button[type=submit]").click()
    wait_for(browser, lambda d: "Settings changed: points_ttl_days 365 → 180, auto_close_after_hours 72 → 24."
             in d.find_element(By.ID, "notice").text, "no confirmation")
    page_loaded(browser, "Settings")
    stored = expect(operator.get("/api/v1/settings"), 200)
    assert (stored["points_ttl_days"], stored["auto_close_after_hours"]) == (180, 24)
    Select(browser.find_element(By.ID, "period")).select_by_value("weekly")  # the month has transactions
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=change-settings] button[type=submit]").click()
    form_error_saying(browser, "calendar")  # the API's 409 calendar_fixed
    assert expect(operator.get("/api/v1/settings"), 200)["period"] == "monthly"


def test_an_operators_header_is_one_line_at_1280_pixels(browser, server, operator):
    """Eleven sections, the brand and the key's role took two lines at 1280 px: the
    role and "Sign out" wrapped under the sections, and every page began 44 px lower."""
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, "settings", "Settings")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#nav a")) == 11
    rows = {element.rect["y"] for element in browser.find_elements(By.CSS_SELECTOR, ".brand, #nav a, #logout")}
    assert max(rows) - min(rows) < 20, rows


def test_the_time_zone_is_typed_with_the_zone_names_offered(browser, server, operator):
    """The field was free text with nothing offered: a long IANA name typed from memory."""
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, "settings", "Settings")
    zone = browser.find_element(By.ID, "timezone")
    offered = browser.execute_script("return [...arguments[0].list.options].map((o) => o.value)", zone)
    assert {"Asia/Tokyo", "Europe/Moscow", "America/Santiago"} <= set(offered)
    zone.clear()
    zone.send_keys("Asia/Tokyo")
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=change-settings] button[type=submit]").click()
    wait_for(browser, lambda d: "timezone UTC → Asia/Tokyo" in d.find_element(By.ID, "notice").text,
             "no confirmation")
    assert expect(operator.get("/api/v1/settings"), 200)["timezone"] == "Asia/Tokyo"


def test_the_settings_form_is_offered_by_a_browser_that_cannot_list_zone_names(browser, server, operator):
    # Intl.supportedValuesOf came with Chrome 99, Firefox 93 and Safari 15.4: without it
    # the page failed to render, where it only has no names to offer
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    browser.execute_script("delete Intl.supportedValuesOf")
    go(browser, server, "settings", "Settings")
    zone = browser.find_element(By.ID, "timezone")
    assert browser.execute_script("return arguments[0].list.options.length", zone) == 0
    assert zone.get_attribute("value") == "UTC"


def test_a_finance_key_reads_the_settings_and_a_partner_key_does_not(browser, server, make_key, month):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(make_key("finance", "aroma")))
    go(browser, server, "settings", "Settings")
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "main tbody tr")]
    assert rows[1].startswith("Time zone UTC") and rows[2].startswith("Period monthly")
    assert browser.find_elements(By.CSS_SELECTOR, "form[aria-labelledby=change-settings]") == []
    browser.find_element(By.ID, "logout").click()
    sign_in(browser, server, key_of(make_key("partner", "aroma")))
    go(browser, server, "settings", "Not available")


def test_operator_adds_a_partner_through_the_form(browser, server, operator, month):
    add_partner_in_the_form(browser, server, operator, "ironfit", "IronFit Gym", "gym", "EUR")
    assert expect(operator.get("/api/v1/partners/ironfit"), 200)["category"] == "gym"


def test_a_partners_currency_typed_in_lower_case_is_sent_in_upper_case(browser, server, operator, month):
    # "rub" was refused: "must be an ISO 4217 code"
    add_partner_in_the_form(browser, server, operator, "pekarnya", "Пекарня", "shop", "rub")
    assert expect(operator.get("/api/v1/partners/pekarnya"), 200)["currency"] == "RUB"


def test_an_fx_rates_currency_typed_in_lower_case_is_sent_in_upper_case(browser, server, operator, month):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "rates", "Rates")
    Select(browser.find_element(By.ID, "rate-kind")).select_by_value("fx")
    browser.find_element(By.ID, "rate-value").send_keys("0.04")
    browser.find_element(By.ID, "rate-currency").send_keys("czk")
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-rate] button[type=submit]").click()
    wait_for(browser, lambda d: "added" in d.find_element(By.ID, "notice").text, "no confirmation")
    listed = expect(operator.get("/api/v1/rates", query_string={"kind": "fx"}), 200)
    assert [rate["value"] for rate in listed if rate["currency"] == "CZK"] == ["0.04"]


def test_kpis_page_draws_charts_over_time(browser, server, operator, month, screenshots):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, f"kpis?period={month}", "KPIs")
    shot(browser, screenshots, "07-kpis")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".charts figure svg")) == 4
    coalition = expect(operator.get("/api/v1/kpis", query_string={"period_id": month}), 200)["periods"][0]["coalition"]
    # small_closed_month: m1 and m2 active, 2468 + 100 points issued
    assert (coalition["active_members"], coalition["points_issued"]) == (2, 2568)
    assert "2,568" in browser.find_element(By.CSS_SELECTOR, "table.kpi-table").text


def test_the_kpis_of_a_period_older_than_the_charts_are_that_periods(browser, server, operator):
    """The page reads the latest 12 periods for its charts, and the Periods page links every
    period to it: one older than those showed the newest period's KPIs instead, without a word."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    expect(operator.put("/api/v1/settings", json={"period": "daily"}), 200)
    add_partner(operator, "skyair", "SkyAir", "travel", "EUR")
    add_rate(operator, "earn", "2", partner_id="skyair")
    start, oldest = day_in_past(20)  # the periods run from this day to today: 21 of them
    earn(operator, "m1-earn", "skyair", "m1", at(start, 0), "123.00", "EUR")  # 123.00 × 2 = 246 points
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"kpis?period={oldest}", "KPIs")
    caption = browser.find_element(By.CSS_SELECTOR, "table.kpi-table caption").text
    assert caption.startswith(f"Period {oldest} (open)")
    assert Select(browser.find_element(By.ID, "period")).first_selected_option.get_attribute("value") == oldest
    assert "246" in browser.find_element(By.CSS_SELECTOR, "table.kpi-table").text
    assert len(browser.find_elements(By.CSS_SELECTOR, ".charts figure svg")) == 4  # the latest periods' charts


def test_kpis_counted_before_the_request_say_when(browser, server, operator, month, monkeypatch):
    from selenium.webdriver.common.by import By

    from coalition.services import kpi_counts

    this_month = current_month_id()
    monkeypatch.setattr(kpi_counts, "LIVE_COUNTING", timedelta(0))  # every count is kept
    expect(operator.get("/api/v1/kpis", query_string={"period_id": this_month}), 200)
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"kpis?period={this_month}", "KPIs")
    caption = browser.find_element(By.CSS_SELECTOR, "table.kpi-table caption").text
    assert "as counted at" in caption and "points as of now" in caption
    go(browser, server, f"kpis?period={month}", "KPIs")  # closed: final counts, no time to tell
    wait_for(browser, lambda d: month in d.find_element(By.CSS_SELECTOR, "table.kpi-table caption").text,
             "the closed month's table")
    assert "counted at" not in browser.find_element(By.CSS_SELECTOR, "table.kpi-table caption").text


def test_choosing_a_kpis_scope_or_period_draws_the_report_read_without_reading_it_again(
        browser, server, operator, month, monkeypatch):
    """At 400 partners the page's report is megabytes and a second of the server's: each
    change of scope or period read it again, for figures the page already had."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from coalition.services import kpis

    reads = []
    report = kpis.report
    monkeypatch.setattr(kpis, "report", lambda *args, **kwargs: reads.append(kwargs) or report(*args, **kwargs))
    sign_in(browser, server, key_of(operator))
    go(browser, server, f"kpis?period={month}", "KPIs")
    assert len(reads) == 1

    def issued(scope: str, column: str) -> list[str]:
        """The points issued in the scope chosen and coalition-wide, once the scope is shown."""
        Select(browser.find_element(By.ID, "scope")).select_by_value(scope)
        browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
        wait_for(browser, lambda d: column in d.find_element(By.CSS_SELECTOR, "table.kpi-table thead")
                 .get_attribute("textContent"), f"no column {column!r}")
        row = browser.find_element(By.XPATH, "//table[@class='kpi-table']//tr[th[starts-with(., 'Points issued')]]")
        return [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]

    # small_closed_month: m2 earned 100 points at aroma, m1 2468 at skyair
    assert issued("aroma", "Кофейня Арома") == ["100", "2,568"]
    assert issued("skyair", "SkyAir") == ["2,468", "2,568"]
    assert len(reads) == 1, "a change of scope read the KPIs again"
    browser.find_element(By.XPATH, "//button[text()='Read again']").click()
    wait_for(browser, lambda d: len(reads) == 2, "Read again read nothing")
    page_loaded(browser, "KPIs")
    go(browser, server, "partners", "Partners")
    go(browser, server, f"kpis?period={month}", "KPIs")
    assert len(reads) == 3, "the page opened again from another showed what it read before"


# --- keys and roles -----------------------------------------------------------------------------


def test_the_key_stays_in_session_storage_and_out_of_urls(browser, server, operator, month):
    from selenium.webdriver.common.by import By

    key = key_of(operator)
    sign_in(browser, server, key)
    go(browser, server, f"statements?period_id={month}", "Statements")
    assert browser.execute_script("return sessionStorage.getItem('coalition.key')") == key
    assert browser.execute_script("return localStorage.length") == 0
    assert browser.execute_script("return document.cookie") == ""
    requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert requested and not [url for url in requested if key in url]
    browser.find_element(By.ID, "logout").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "api-key"), "no login form after signing out")
    assert browser.execute_script("return sessionStorage.getItem('coalition.key')") is None
    # nor does the header still name the role and offer to sign out (CSS overrode `hidden`)
    assert not browser.find_element(By.ID, "who").is_displayed()
    assert not browser.find_element(By.ID, "nav").is_displayed()
    assert browser.find_element(By.ID, "who-text").get_attribute("textContent") == ""


def test_signing_out_names_the_sign_in_form_in_the_tab_title(browser, server, operator, month):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    go(browser, server, "members", "Members")
    assert browser.title == "Members · Coalition"
    browser.find_element(By.ID, "logout").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "api-key"), "no login form after signing out")
    assert browser.title == "Sign in · Coalition"  # it stayed "Members · Coalition"


def test_an_unknown_key_is_refused_at_sign_in(browser, server, month):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{server}/console/")
    wait_for(browser, lambda d: d.find_element(By.ID, "api-key"), "no login form").send_keys("coal_wrong", Keys.ENTER)
    error = form_error_saying(browser)
    assert "unknown or revoked key" in error.text


def test_a_partner_key_sees_only_its_own_partner(browser, server, make_key, operator, month, screenshots):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(make_key("partner", "aroma")))
    sections = [link.text for link in browser.find_elements(By.CSS_SELECTOR, "#nav a")]
    assert sections == ["Periods", "Statements", "Members", "Transactions", "KPIs"]
    go(browser, server, f"statements?period_id={month}", "Statements")
    rows = browser.find_elements(By.CSS_SELECTOR, "main tbody tr")
    assert len(rows) == 1 and "Кофейня Арома" in rows[0].text
    go(browser, server, f"kpis?period={month}", "KPIs")
    shot(browser, screenshots, "08-partner-kpis")
    page = text_of(browser).lower()  # table headers are upper-cased by CSS
    assert "кофейня арома" in page
    assert "skyair" not in page and "coalition-wide" not in page  # totals would reveal the others
    go(browser, server, f"settlement/{month}", "Not available")


def test_a_finance_key_bound_to_a_partner_is_offered_its_own_kpis_only(browser, server, make_key, month):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(make_key("finance", "skyair")))
    go(browser, server, "partners", "Partners")
    offered = {row.find_element(By.TAG_NAME, "code").text: [a.text for a in row.find_elements(By.CSS_SELECTOR, ".actions a")]
               for row in browser.find_elements(By.CSS_SELECTOR, "main tbody tr")}
    # the link for aroma led to skyair's own figures, without a word
    assert offered["skyair"] == ["Rates", "KPIs"] and offered["aroma"] == ["Rates"]
    go(browser, server, f"kpis?period={month}&scope=aroma", "KPIs")
    assert "This key is bound to SkyAir" in text_of(browser)


def test_a_finance_key_bound_to_a_partner_is_told_why_it_cannot_see_the_settlement(browser, server, make_key, month):
    sign_in(browser, server, key_of(make_key("finance", "skyair")))
    go(browser, server, f"settlement/{month}", "Not available")
    page = text_of(browser)
    assert "A key bound to a partner cannot see this page" in page
    assert "finance key" not in page  # "A finance key cannot see this page.": unbound ones can


def test_the_periods_page_tells_a_partner_key_what_it_can_do_there(browser, server, make_key, month):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(make_key("partner", "aroma")))
    lead = browser.find_element(By.CSS_SELECTOR, "main p.lead").text
    assert "Statements" in lead and "KPIs" in lead
    assert "draft" not in lead and "closing" not in lead  # it sees no draft and closes nothing


def test_the_kpis_of_a_key_bound_to_a_partner_say_they_are_that_partners_only(browser, server, make_key, month):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(make_key("partner", "aroma")))
    go(browser, server, f"kpis?period={month}", "KPIs")
    hint = browser.find_element(By.CSS_SELECTOR, "form.filters p.hint").text
    assert "that partner's figures only" in hint
    assert "and the coalition's totals" not in hint  # no coalition column is shown: the API gives none
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.kpi-table thead th")) == 2  # Measure, Кофейня Арома


def test_a_bookmarked_page_opened_without_a_key_is_where_signing_in_leads(browser, server, operator, month):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{server}/console/#/statements?period_id={month}")
    field = wait_for(browser, lambda d: d.find_element(By.ID, "api-key"), "no login form")
    field.send_keys(key_of(operator), Keys.ENTER)
    page_loaded(browser, "Statements")  # it went to the periods
    assert browser.current_url.endswith(f"#/statements?period_id={month}")


def test_at_a_phones_width_the_charts_scroll_instead_of_shrinking_their_text(browser, server, operator, month,
                                                                              screenshots):
    sign_in(browser, server, key_of(operator))
    browser.set_window_size(390, 900)
    go(browser, server, f"settlement/{month}", f"Settlement {month}")
    browser.execute_script("document.querySelector('figure.chart').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "13-phone-settlement-chart.png"))
    label = "document.querySelector('figure.chart svg text.bar-label').getBoundingClientRect().height"
    assert browser.execute_script(f"return {label}") >= 10  # it was about 6 px: 5 px type
    figure = "document.querySelector('figure.chart')"
    assert browser.execute_script(f"return {figure}.scrollWidth > {figure}.clientWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390  # the page itself does not


@pytest.mark.parametrize("route, heading", [("kpis", "KPIs"), ("statements", "Statements"), ("rates", "Rates")])
def test_at_a_phones_width_a_long_partner_name_keeps_its_select_within_the_page(browser, server, operator, long_name,
                                                                                route, heading, screenshots):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(operator))
    browser.set_window_size(500, 900)
    go(browser, server, route, heading)
    browser.save_screenshot(str(screenshots / f"14-phone-{route}.png"))
    width = browser.execute_script("return window.innerWidth")
    selects = browser.find_elements(By.CSS_SELECTOR, "main select")
    assert any(LONG_NAME in s.text for s in selects)
    for box in selects:
        assert browser.execute_script("return arguments[0].getBoundingClientRect().right", box) <= width
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width  # the page scrolled sideways


def test_a_key_revoked_before_a_download_signs_out_saying_why(browser, server, operator, month):
    from selenium.webdriver.common.by import By

    created = expect(operator.post("/api/v1/keys", json={"role": "finance"}))
    statement = statement_of(operator, "aroma", month)
    sign_in(browser, server, created["key"])
    go(browser, server, f"statements?period_id={month}", "Statements")
    assert operator.delete(f"/api/v1/keys/{created['id']}").status_code == 204
    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="Download statement {statement["number"]} as PDF"]').click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "api-key"), "no login form after the key was revoked")
    time.sleep(0.3)  # the download's own handler ran after the sign-out: it replaced the notice
    notice = browser.find_element(By.ID, "notice")
    assert notice.is_displayed() and notice.text.startswith("Signed out: ")


# --- the keys page ------------------------------------------------------------------------------


@pytest.fixture
def keys_made(operator, month) -> list[dict]:
    """:func:`small_closed_month`, and :func:`tests.e2e.helpers.key_ring`'s keys: a till of
    aroma's (revoked), a finance team's, aroma's finance."""
    return key_ring(operator)


def shown_at(text: str) -> str:
    """An instant as the console shows one: "2026-10-31 21:00 UTC"."""
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def keys_listed(browser) -> list[list[str]]:
    """The keys page's table: id, role, partner, name, created and status of each row, in order."""
    from selenium.webdriver.common.by import By

    return [[row.find_element(By.TAG_NAME, "code").text]
            + [cell.get_attribute("textContent") for cell in row.find_elements(By.TAG_NAME, "td")[1:6]]
            for row in browser.find_elements(By.CSS_SELECTOR, "main tbody tr")]


def confirm(browser, accept: bool = True) -> str:
    """Answer the page's confirmation dialog; its question."""
    from selenium.webdriver.support import expected_conditions

    dialog = wait_for(browser, expected_conditions.alert_is_present(), "no confirmation asked")
    question = dialog.text
    dialog.accept() if accept else dialog.dismiss()
    return question


def revoke_in_the_page(browser, key_id: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="Revoke key {key_id}"]').click()


def test_the_operator_sees_every_key_newest_first_with_what_it_is_for(browser, server, operator, keys_made,
                                                                    screenshots):
    from selenium.webdriver.common.by import By

    till, finance, aroma_finance = keys_made
    sign_in(browser, server, key_of(operator))
    browser.find_element(By.LINK_TEXT, "Keys").click()
    page_loaded(browser, "Keys")
    shot(browser, screenshots, "15-keys")
    every = expect(operator.get("/api/v1/keys"), 200)  # oldest first
    listed = keys_listed(browser)
    assert [row[0] for row in listed] == [key["id"] for key in reversed(every)]
    rows = {row[0]: row[1:] for row in listed}
    till_now = expect(operator.get(f"/api/v1/keys/{till['id']}"), 200)
    assert rows[till["id"]] == ["partner", "Кофейня Арома", "till 7", shown_at(till["created_at"]),
                                f"revoked {shown_at(till_now['revoked_at'])}"]
    assert rows[finance["id"]] == ["finance", "—", "Coalition finance", shown_at(finance["created_at"]), "active"]
    assert rows[aroma_finance["id"]][:3] == ["finance", "Кофейня Арома", "Арома бухгалтерия"]
    signed_in_with = next(row for row in browser.find_elements(By.CSS_SELECTOR, "main tbody tr")
                          if "this console's key" in row.text)
    assert signed_in_with.find_element(By.TAG_NAME, "code").text == every[0]["id"]  # the operator fixture's key
    page = browser.page_source
    assert not [made["key"] for made in keys_made if made["key"] in page]


def test_the_keys_filters_choose_what_is_listed_and_the_address_keeps_them(browser, server, operator, keys_made):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    till, finance, aroma_finance = keys_made
    sign_in(browser, server, key_of(operator))
    go(browser, server, "keys", "Keys")
    Select(browser.find_element(By.ID, "partner_id")).select_by_value("aroma")
    Select(browser.find_element(By.ID, "status")).select_by_value("active")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(browser, lambda d: d.current_url.endswith("#/keys?partner_id=aroma&status=active"), "address")
    browser.refresh()  # as a bookmark opens it
    page_loaded(browser, "Keys")
    assert [row[0] for row in keys_listed(browser)] == [aroma_finance["id"]]  # the till is revoked
    assert Select(browser.find_element(By.ID, "status")).first_selected_option.text == "Active"
    go(browser, server, "keys?status=revoked", "Keys")
    assert [row[0] for row in keys_listed(browser)] == [till["id"]]
    go(browser, server, "keys?role=finance", "Keys")
    assert [row[0] for row in keys_listed(browser)] == [aroma_finance["id"], finance["id"]]


def test_a_created_key_is_shown_once_kept_nowhere_and_works(browser, server, client, operator, keys_made,
                                                            screenshots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "keys", "Keys")
    Select(browser.find_element(By.ID, "key-role")).select_by_value("finance")
    browser.find_element(By.ID, "key-name").send_keys("Audit 2026", Keys.ENTER)  # the keyboard submits
    box = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "main .secret"), "the new key is not shown")
    shot(browser, screenshots, "16-key-created")
    key = box.find_element(By.ID, "new-key").get_attribute("value")
    assert key.startswith("coal_") and "store the new key" in box.text.lower() and "shown this once" in box.text
    assert browser.switch_to.active_element == box.find_element(By.TAG_NAME, "h2")  # it is announced
    expect(Caller(client, key).get("/api/v1/settings"), 200)
    made = expect(Caller(client, key).get("/console/whoami"), 200)
    assert (made["role"], made["partner_id"]) == ("finance", None)
    wait_for(browser, lambda d: keys_listed(d)[0][0] == made["key_id"], "the new key is not listed")
    assert keys_listed(browser)[0][1:4] == ["finance", "—", "Audit 2026"]
    # not kept: not in the address, not in storage, not in any request's URL
    assert key not in browser.current_url
    assert browser.execute_script("return sessionStorage.length") == 1
    assert browser.execute_script("return sessionStorage.getItem('coalition.key')") == key_of(operator)
    assert browser.execute_script("return localStorage.length") == 0
    requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [url for url in requested if key in url]
    box.find_element(By.XPATH, ".//button[starts-with(text(), 'Done')]").click()
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "main .secret"), "the box stayed")
    assert key not in browser.page_source
    go(browser, server, "periods", "Periods")
    browser.back()
    page_loaded(browser, "Keys")
    assert key not in browser.page_source and not browser.find_elements(By.CSS_SELECTOR, "main .secret")


def test_an_operator_key_is_created_without_the_partner_chosen_before(browser, server, operator, month):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "keys", "Keys")
    Select(browser.find_element(By.ID, "key-partner")).select_by_value("aroma")
    Select(browser.find_element(By.ID, "key-role")).select_by_value("operator")
    assert not browser.find_element(By.ID, "key-partner").is_enabled()
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-key] button[type=submit]").click()
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "main .secret"), "no key created")  # it was 422
    newest = expect(operator.get("/api/v1/keys"), 200)[-1]
    assert (newest["role"], newest["partner_id"]) == ("operator", None)


def test_a_key_the_api_refuses_to_create_shows_its_message_in_the_form(browser, server, operator, month):
    from selenium.webdriver.common.by import By

    before = expect(operator.get("/api/v1/keys"), 200)
    sign_in(browser, server, key_of(operator))
    go(browser, server, "keys", "Keys")
    # a partner key (the role chosen at first) without a partner: 422
    browser.find_element(By.CSS_SELECTOR, "form[aria-labelledby=add-key] button[type=submit]").click()
    error = form_error_saying(browser)
    assert error.text.count("a partner key needs the partner it is bound to") == 1
    assert error.get_attribute("role") == "alert"
    assert not browser.find_elements(By.CSS_SELECTOR, "main .secret")
    assert expect(operator.get("/api/v1/keys"), 200) == before


def test_revoking_a_key_asks_first_then_lists_it_revoked_and_the_key_is_refused(browser, server, client, operator,
                                                                               keys_made):
    from selenium.webdriver.common.by import By

    _, finance, _ = keys_made
    sign_in(browser, server, key_of(operator))
    go(browser, server, "keys", "Keys")
    revoke_in_the_page(browser, finance["id"])
    assert finance["id"] in confirm(browser, accept=False)
    expect(Caller(client, finance["key"]).get("/api/v1/settings"), 200)  # not revoked
    revoke_in_the_page(browser, finance["id"])
    confirm(browser)
    wait_for(browser, lambda d: f"Key {finance['id']} is revoked" in d.find_element(By.ID, "notice").text, "no notice")
    revoked_at = expect(operator.get(f"/api/v1/keys/{finance['id']}"), 200)["revoked_at"]
    wait_for(browser, lambda d: {row[0]: row[5] for row in keys_listed(d)}[finance["id"]]
             == f"revoked {shown_at(revoked_at)}", "the list was not refreshed")
    assert not browser.find_elements(By.CSS_SELECTOR, f'button[aria-label="Revoke key {finance["id"]}"]')
    assert Caller(client, finance["key"]).get("/api/v1/settings").status_code == 401


def test_revoking_the_consoles_own_key_signs_out(browser, server, client, operator, month):
    from selenium.webdriver.common.by import By

    own = expect(operator.post("/api/v1/keys", json={"role": "operator", "name": "console"}))
    sign_in(browser, server, own["key"])
    go(browser, server, "keys", "Keys")
    revoke_in_the_page(browser, own["id"])
    assert "you will be signed out" in confirm(browser)
    wait_for(browser, lambda d: d.find_elements(By.ID, "api-key"), "no login form after revoking its own key")
    notice = browser.find_element(By.ID, "notice")
    assert notice.is_displayed() and notice.text.startswith("Signed out: ")
    assert browser.execute_script("return sessionStorage.getItem('coalition.key')") is None
    assert Caller(client, own["key"]).get("/api/v1/settings").status_code == 401


def test_a_finance_key_sees_the_keys_but_creates_and_revokes_none(browser, server, make_key, operator, keys_made):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, key_of(make_key("finance")))
    assert "Keys" in [link.text for link in browser.find_elements(By.CSS_SELECTOR, "#nav a")]
    go(browser, server, "keys", "Keys")
    assert [row[0] for row in keys_listed(browser)] == [key["id"] for key in
                                                       reversed(expect(operator.get("/api/v1/keys"), 200))]
    assert not browser.find_elements(By.CSS_SELECTOR, "form[aria-labelledby=add-key]")
    assert not browser.find_elements(By.XPATH, "//main//button[starts-with(text(), 'Revoke')]")
    assert "Only the operator creates and revokes keys." in text_of(browser)


# --- the changes page ---------------------------------------------------------------------------


@pytest.fixture
def changes_made(client, operator, database, month) -> dict:
    """:func:`small_closed_month`, then, through an operator key named "Back office": gym
    created as "Gym", renamed "Gym One", a redemption rate of 0.0100 from tomorrow, then gym held 3 days
    from the command line, then a till of gym's created and revoked. The answers."""
    back = expect(operator.post("/api/v1/keys", json={"role": "operator", "name": "Back office"}))
    office = Caller(client, back["key"])
    add_partner(office, "gym", "Gym", "gym", "EUR")
    expect(office.patch("/api/v1/partners/gym", json={"name": "Gym One"}), 200)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    rate = add_rate(office, "redemption", "0.0100", effective_from=tomorrow)  # after the closed month
    with recorded.acting(recorded.Actor("cli")):
        database.run(partners.update, "gym", {"hold_days": 3})
    till = expect(office.post("/api/v1/keys", json={"role": "partner", "partner_id": "gym", "name": "till 1"}))
    assert office.delete(f"/api/v1/keys/{till['id']}").status_code == 204
    return {"back": back, "rate": rate, "till": expect(operator.get(f"/api/v1/keys/{till['id']}"), 200)}


def every_change(caller) -> list[dict]:
    """The record, oldest first, as the API gives it."""
    return expect(caller.get("/api/v1/changes", query_string={"limit": 1000}), 200)["items"]


def changes_listed(browser) -> list[list]:
    """The changes page's table: when, who (the key's name, without its id), what, action,
    and the fields' lines of each row, in order (read in one call: a row at a time through
    WebDriver, a thousand rows take a minute)."""
    return browser.execute_script("""
        return [...document.querySelectorAll("main tbody tr")].map((row) => {
          const [when, who, what, action, fields] = row.cells;
          return [when.innerText, who.innerText.split("\\n")[0], what.innerText, action.innerText,
                  [...fields.querySelectorAll("li")].map((line) => line.innerText)];
        });""")


def test_the_operator_sees_the_changes_newest_first_with_who_made_them_and_before_and_after(
        browser, server, operator, changes_made, month, screenshots):
    from selenium.webdriver.common.by import By

    back, rate, till = changes_made["back"], changes_made["rate"], changes_made["till"]
    operator_id = expect(operator.get("/console/whoami"), 200)["key_id"]  # unnamed: shown by its id
    sign_in(browser, server, key_of(operator))
    browser.find_element(By.LINK_TEXT, "Changes").click()
    page_loaded(browser, "Changes")
    shot(browser, screenshots, "17-changes")
    every = every_change(operator)
    listed = changes_listed(browser)
    assert [(row[2], row[3]) for row in listed] == [
        ("settings" if c["subject"] == "settings" else f"{c['subject']} {c['subject_id']}", c["action"])
        for c in reversed(every)]
    created = {c["subject_id"]: c["at"] for c in every if c["action"] == "create"}
    assert listed[:7] == [
        [shown_at(till["revoked_at"]), "Back office", f"key {till['id']}", "revoke",
         [f"revoked_at: — → {shown_at(till['revoked_at'])}"]],
        [shown_at(created[till["id"]]), "Back office", f"key {till['id']}", "create",
         ["name: till 1", "partner_id: gym", "role: partner"]],  # revoked_at null: not set
        [listed[2][0], "command line", "partner gym", "update", ["hold_days: 0 → 3"]],
        [shown_at(created[str(rate["id"])]), "Back office", f"rate {rate['id']}", "create",
         [f"effective_from: {shown_at(rate['effective_from'])}", "kind: redemption", "value: 0.0100"]],
        [listed[4][0], "Back office", "partner gym", "update", ["name: Gym → Gym One"]],
        [shown_at(created["gym"]), "Back office", "partner gym", "create",
         ["category: gym", "currency: EUR", "hold_days: 0", "name: Gym", "status: active"]],
        [shown_at(back["created_at"]), operator_id, f"key {back['id']}", "create",
         ["name: Back office", "role: operator"]],
    ]
    closed = next(row for row in browser.find_elements(By.CSS_SELECTOR, "main tbody tr") if f"period {month}" in row.text)
    assert closed.find_element(By.LINK_TEXT, f"period {month}").get_attribute("href").endswith(f"#/settlement/{month}")
    assert changes_listed(browser)[-1][1] == "system"  # the operator's key, made by the test's code


def test_the_changes_filters_choose_what_is_listed_and_the_address_keeps_them(browser, server, operator,
                                                                             changes_made, month):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    sign_in(browser, server, key_of(operator))
    go(browser, server, "changes", "Changes")
    Select(browser.find_element(By.ID, "subject")).select_by_value("partner")
    browser.find_element(By.ID, "subject_id").send_keys("gym", Keys.ENTER)  # the keyboard submits
    wait_for(browser, lambda d: d.current_url.endswith("#/changes?subject=partner&subject_id=gym"), "address")
    browser.refresh()  # as a bookmark opens it
    page_loaded(browser, "Changes")
    assert [row[1:4] for row in changes_listed(browser)] == [
        ["command line", "partner gym", "update"], ["Back office", "partner gym", "update"],
        ["Back office", "partner gym", "create"]]
    assert Select(browser.find_element(By.ID, "subject")).first_selected_option.text == "partner"
    assert browser.find_element(By.ID, "subject_id").get_attribute("value") == "gym"
    go(browser, server, "changes?via=cli", "Changes")
    assert [row[1:5] for row in changes_listed(browser)] == [["command line", "partner gym", "update",
                                                              ["hold_days: 0 → 3"]]]
    assert Select(browser.find_element(By.ID, "via")).first_selected_option.text == "command line"
    go(browser, server, "changes?subject=period", "Changes")
    assert [row[2:4] for row in changes_listed(browser)] == [[f"period {month}", "close"]]
    go(browser, server, "changes?subject=settings", "Changes")
    assert "No changes for this choice." in text_of(browser)


def test_a_finance_key_not_bound_to_a_partner_sees_the_changes(browser, server, make_key, operator, changes_made):
    from selenium.webdriver.common.by import By

    finance = make_key("finance")
    sign_in(browser, server, key_of(finance))
    assert "Changes" in [link.text for link in browser.find_elements(By.CSS_SELECTOR, "#nav a")]
    go(browser, server, "changes", "Changes")
    listed = changes_listed(browser)
    assert len(listed) == len(every_change(operator))
    own = expect(finance.get("/console/whoami"), 200)["key_id"]
    assert [row[1:4] for row in listed[:2]] == [["system", f"key {own}", "create"],  # its own, by the test's code
                                                ["Back office", f"key {changes_made['till']['id']}", "revoke"]]


@pytest.mark.parametrize("role", ["partner", "finance"])
@pytest.mark.parametrize("page, why", [("keys", "every partner's tills and teams"),
                                       ("changes", "every partner's rates and keys")])
def test_a_key_bound_to_a_partner_is_not_offered_the_pages_that_name_every_partner(browser, server, make_key,
                                                                                  month, role, page, why):
    from selenium.webdriver.common.by import By

    bound = make_key(role, "aroma")
    sign_in(browser, server, key_of(bound))
    assert page.title() not in [link.text for link in browser.find_elements(By.CSS_SELECTOR, "#nav a")]
    go(browser, server, page, "Not available")
    assert f"A key bound to a partner cannot see this page: the {page} name {why}." in text_of(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "main table")
    expect(bound.get(f"/api/v1/{page}"), 403)  # as the API refuses it


def test_more_changes_than_the_page_reads_show_the_newest_and_say_so(browser, server, operator, database, month):
    now = datetime.now(UTC)
    rows = [{"at": now, "via": "system", "key_id": None, "subject": "partner", "subject_id": "aroma",
             "action": "update", "detail": json.dumps({"hold_days": [0, n]})} for n in range(1, 1001)]
    database.run(lambda session: session.execute(insert(models.Change), rows))
    sign_in(browser, server, key_of(operator))
    go(browser, server, "changes", "Changes")
    listed = changes_listed(browser)
    assert len(listed) == 1000
    assert [row[4] for row in (listed[0], listed[-1])] == [["hold_days: 0 → 1000"], ["hold_days: 0 → 1"]]
    assert "Showing the newest 1,000 changes: choose a subject, an id or who made them for older ones." in text_of(browser)
    go(browser, server, "changes?subject=period", "Changes")  # a choice that matches fewer lists them
    assert [row[2:4] for row in changes_listed(browser)] == [[f"period {month}", "close"]]
    assert "Showing the newest" not in text_of(browser)


def test_a_member_with_more_movements_than_the_page_reads_sees_the_newest(browser, server, operator, month):
    """small_month's m1 earned 2468 points and burned 2345; then 1,000 bonuses of 1 point,
    and the newest of 7: 1,002 movements, and 123 + 999 + 7 = 1,129 points available."""
    from selenium.webdriver.common.by import By

    just_now = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    bonuses = [{"external_id": f"gift-{n}", "type": "bonus", "partner_id": "coalition", "member_id": "m1",
                "occurred_at": just_now, "points": 7 if n == 1000 else 1, "reason": f"gift {n}"}
               for n in range(1, 1001)]
    results = expect(operator.post("/api/v1/transactions/batch", json={"transactions": bonuses}), 200)["results"]
    assert {result["status"] for result in results} == {201}
    sign_in(browser, server, key_of(operator))
    go(browser, server, "members/m1", "Members")
    rows = browser.execute_script("""
        const history = [...document.querySelectorAll("main table")].at(-1);
        return [...history.tBodies[0].rows].map((row) => [...row.cells].map((cell) => cell.innerText));""")
    assert len(rows) == 1000
    assert [row[1:7] for row in (rows[0], rows[-1])] == [
        ["bonus", "coalition", "gift-1000", "gift 1000", "+7", "—"],
        ["bonus", "coalition", "gift-1", "gift 1", "+1", "—"],
    ]
    assert "Showing the newest 1,000 movements." in text_of(browser)
    assert "1,129" in browser.find_element(By.CSS_SELECTOR, "main .cards").text


def test_the_rates_page_shows_one_fx_currency_s_history(browser, server, operator, month):
    """A daily fx rate per currency for years is tens of thousands of versions: the page
    lists one currency's, typed in either case, not every version of every currency."""
    from selenium.webdriver.common.by import By

    for currency, value in (("JPY", "0.0061"), ("JPY", "0.0062"), ("KWD", "3.01")):
        add_rate(operator, "fx", value, currency=currency, effective_from=datetime.now(UTC).isoformat())
    sign_in(browser, server, key_of(operator))
    go(browser, server, "rates?current=0", "Rates")
    browser.find_element(By.ID, "currency").send_keys("jpy")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(browser, lambda d: "currency=JPY" in d.current_url, "the choice was not shown")
    wait_for(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "main tbody tr")) == 2,
        "not JPY's two versions alone",
    )
    currencies = browser.execute_script(
        "return [...document.querySelectorAll('main tbody tr')].map((row) => row.cells[5].innerText);")
    assert currencies == ["JPY", "JPY"]
