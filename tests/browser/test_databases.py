"""The databases screen in the browser: register, test, edit and delete a
database; initialize it as a job with its progress; approve and dismiss the
tables the scanner discovered; add a custom counter; errors shown where they
happen; and what a reader may not do, on the page and at the server.

The databases are real: SQLite files in the server's --sqlite-dir, and a
throwaway database on the machine's PostgreSQL (127.0.0.1:5432) when it
runs.
"""

from __future__ import annotations

import pathlib
import shutil
import socket
import sqlite3
import subprocess
import time
import uuid
from typing import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from conftest import ADMIN, MASTER_KEY, Api, Page, console_problems, make_role, make_user, new_driver, set_phone
from kxy_server import KxyServer


# --- scene ---------------------------------------------------------------


@pytest.fixture
def sqlite_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "sqlite"
    path.mkdir()
    return path


@pytest.fixture
def server(tmp_path: pathlib.Path, sqlite_dir: pathlib.Path) -> Iterator[KxyServer]:
    """Overrides conftest's: SQLite files from `sqlite_dir`, and a scanner
    pass every second (so discovered tables show up within a test)."""
    kxy = KxyServer(
        tmp_path / "data",
        "--master-key", MASTER_KEY,
        "--sqlite-dir", str(sqlite_dir),
        "--scan-interval", "1",
    )
    yield kxy
    kxy.stop()


def make_sqlite(directory: pathlib.Path, name: str, script: str) -> pathlib.Path:
    path = directory / name
    connection = sqlite3.connect(path)
    connection.executescript(script)
    connection.commit()
    connection.close()
    return path


def register(api: Api, body: dict) -> str:
    return api.ok("POST", "/api/database/add", body)["guid"]


def row(guid: str) -> str:
    return f'tbody[data-guid="{guid}"]'


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def counters(api: Api) -> dict[tuple[str, str, str, str], int]:
    return {
        (c["system_code"], c["db_name"], c["table_name"], c["field_name"]): c["next_id"]
        for c in api.ok("GET", "/api/counters")
    }


def wait_for(check, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.1)


def psql(database: str, sql: str) -> str:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-qtAc", sql],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL, dropped after."""
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    try:
        psql("test", "SELECT 1")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 does not answer: {error}")
    name = f"kxyb_{uuid.uuid4().hex[:12]}"
    psql("test", f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        psql("test", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- the main flows ------------------------------------------------------


def test_add_test_edit_and_delete_a_sqlite_database(page: Page, admin_api: Api, sqlite_dir) -> None:
    make_sqlite(sqlite_dir, "shop.db", "CREATE TABLE items (id INTEGER PRIMARY KEY); CREATE TABLE tags (name TEXT PRIMARY KEY);")
    page.login(*ADMIN)
    page.go("databases")
    page.see("No database is registered yet.")

    page.click("Add database")
    page.fill("System code", "pos", "#db-form")
    page.choose("Type", "SQLite", "#db-form")
    page.fill("SQLite file", "shop.db", "#db-form")
    # Tested before it is saved: what the server found there.
    page.click("Test connection", "#db-form")
    assert "2 tables visible, 1 can be numbered" in page.find("#db-form .db-test").text
    assert page.find("#db-form .db-test").text.startswith("connected to SQLite 3.")
    assert admin_api.ok("GET", "/api/database/list") == [], "testing registers nothing"
    page.click("Add database", "#db-form")
    page.see("Database pos / shop.db registered.")
    [db] = admin_api.ok("GET", "/api/database/list")
    assert (db["system_code"], db["db_type"], db["db_name"], db["counter_db_name"]) == ("pos", "sqlite", "shop.db", "shop")

    # The list: what it is and where; a connection test shown in its row.
    cells = [c.text for c in page.driver.find_elements(By.CSS_SELECTOR, f"{row(db['guid'])} tr:first-child td")]
    assert cells[:5] == ["pos", "SQLite", "shop.db", "—", "none"]
    page.click("Test connection", row(db["guid"]))
    assert "2 tables visible, 1 can be numbered" in page.find(f"{row(db['guid'])} .db-test").text

    # Edit: the form holds the record; a change is saved.
    page.click("Edit", row(db["guid"]))
    page.see("Edit pos / shop.db")
    assert page.field("System code", "#db-form").get_attribute("value") == "pos"
    page.fill("System code", "till", "#db-form")
    page.field("System code", "#db-form").send_keys(Keys.ENTER)  # forms submit with Enter
    page.see("Database till / shop.db saved.")
    assert admin_api.ok("GET", f"/api/database/{db['guid']}")["system_code"] == "till"

    # Delete asks first; its counters would stay.
    page.click("Delete", row(db["guid"]))
    page.accept_confirm()
    page.see("Database till / shop.db deleted; its counters stay.")
    assert admin_api.ok("GET", "/api/database/list") == []


def test_scan_now_follows_the_job_and_registers_the_counters(page: Page, admin_api: Api, postgres: str) -> None:
    psql(
        postgres,
        "CREATE TABLE orders (id BIGINT PRIMARY KEY); INSERT INTO orders VALUES (41);"
        "CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('a'), ('b');"
        "CREATE TABLE notes (code TEXT PRIMARY KEY);",
    )
    page.login(*ADMIN)
    page.go("databases")
    # Registered through the form, against the real PostgreSQL.
    page.click("Add database")
    page.fill("System code", "erp", "#db-form")
    page.choose("Type", "PostgreSQL", "#db-form")
    page.fill("Address", "127.0.0.1:5432", "#db-form")
    page.fill("Database name", postgres, "#db-form")
    page.fill("User", "postgres", "#db-form")
    page.click("Add database", "#db-form")
    page.see(f"Database erp / {postgres} registered.")
    [db] = admin_api.ok("GET", "/api/database/list")
    within = row(db["guid"])
    page.click("Test connection", within)
    found = page.find(f"{within} .db-test").text
    assert found.startswith("connected to PostgreSQL ") and "3 tables visible, 2 can be numbered" in found, found

    page.click("Scan now", within)
    page.see("Scan done: 2 of 3 tables registered, 1 skipped.")
    bar = page.find(f"{within} progress")
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("3", "3")
    # What the scan did, and why a table was skipped.
    page.driver.find_element(By.CSS_SELECTOR, f"{within} .db-report summary").click()
    page.see("primary key code is text, not an integer")
    # The server registered the counters above the rows (and the sequence).
    assert counters(admin_api) == {
        ("erp", postgres, "orders", "id"): 42,
        ("erp", postgres, "users", "id"): 4,  # above the sequence's next value (3)
    }


def test_discovered_tables_are_approved_or_dismissed_and_custom_counters_added(
    page: Page, admin_api: Api, sqlite_dir, server: KxyServer
) -> None:
    make_sqlite(
        sqlite_dir, "shop.db",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY); INSERT INTO orders VALUES (41);"
        "CREATE TABLE audit (id INTEGER PRIMARY KEY);",
    )
    guid = register(admin_api, {"system_code": "pos", "db_type": "sqlite", "db_name": "shop.db"})
    wait_for(
        lambda: len(admin_api.ok("GET", f"/api/database/{guid}/discovered-tables")["tables"]) == 2,
        "the scanner discovering both tables",
    )
    page.login(*ADMIN)
    page.go("databases")
    within = row(guid)
    assert page.find(f"{within} .badge").text == "reachable"
    page.click("Tables (2 new)", within)
    page.see("Tables of pos / shop.db")

    page.button("Approve", within)  # waits for the list
    page.driver.find_element(By.CSS_SELECTOR, f'{within} button[aria-label="Approve orders"]').click()
    page.see("Counter for orders.id created: the next ID is 42.")
    assert counters(admin_api)[("pos", "shop", "orders", "id")] == 42

    page.driver.find_element(By.CSS_SELECTOR, f'{within} button[aria-label="Dismiss audit"]').click()
    page.accept_confirm()
    page.see("audit dismissed.")
    assert admin_api.ok("GET", f"/api/database/{guid}/discovered-tables")["tables"] == []
    page.see("No table waits for a counter.")

    # A custom counter (the seed's "add config"), submitted with Enter.
    page.fill("Field name", "order_no", within)
    page.fill("Initial value", "1000", within)
    page.field("Initial value", within).send_keys(Keys.ENTER)
    page.see("Counter pos / shop / custom / order_no created: the next ID is 1001.")
    segment = Api(server.base_url).ok(
        "POST", "/api/segment/allocate",
        {"system_code": "pos", "db_name": "shop", "table_name": "custom", "field_name": "order_no", "segment_count": 5},
    )
    assert segment["start"] == 1001


# --- errors shown where they happen ------------------------------------------


def test_an_unreachable_database_shows_the_servers_message_in_its_row(page: Page, admin_api: Api) -> None:
    page.provoke("/test", 502)
    port = closed_port()
    guid = register(admin_api, {
        "system_code": "crm", "db_type": "mysql", "address": f"127.0.0.1:{port}",
        "db_name": "shop", "username": "kxy", "password": "s3cret-db-pass",
    })
    page.login(*ADMIN)
    page.go("databases")
    within = row(guid)
    # The password is never shown, not even masked.
    assert "stored" in page.find(within).text
    assert "s3" not in page.find(within).text
    page.click("Test connection", within)
    message = page.find(f'{within} .db-test[role="alert"]').text
    assert message.startswith(f"cannot connect to mysql database shop at 127.0.0.1:{port}: "), message
    assert message.endswith(
        "(nothing accepts connections there: is the database running, and is the port right?)"
    ), message
    assert "s3cret" not in message

    # A form the server refuses says so next to the field it names.
    page.click("Add database")
    page.fill("System code", "crm", "#db-form")
    page.fill("Address", "user:pw@db.internal", "#db-form")
    page.fill("Database name", "shop", "#db-form")
    page.fill("User", "kxy", "#db-form")
    page.click("Add database", "#db-form")
    assert page.error_for("address") == "address: use host:port"
    assert len(admin_api.ok("GET", "/api/database/list")) == 1


def test_editing_keeps_the_password_unless_the_target_moves(page: Page, admin_api: Api) -> None:
    port = closed_port()
    guid = register(admin_api, {
        "system_code": "crm", "db_type": "postgresql", "address": f"127.0.0.1:{port}",
        "db_name": "shop", "username": "kxy", "password": "s3cret-db-pass",
    })
    masked = admin_api.ok("GET", f"/api/database/{guid}")["password_masked"]
    page.login(*ADMIN)
    page.go("databases")
    page.click("Edit", row(guid))
    # The password field starts empty: empty keeps the stored one.
    assert page.field("Password", "#db-form").get_attribute("value") == ""
    page.fill("System code", "crm2", "#db-form")
    page.click("Save changes", "#db-form")
    page.see("Database crm2 / shop saved.")
    after = admin_api.ok("GET", f"/api/database/{guid}")
    assert (after["system_code"], after["password_masked"]) == ("crm2", masked)

    # Moving it elsewhere needs the password again: said next to it, by the
    # page for a test and by the server for a save.
    page.click("Edit", row(guid))
    page.fill("Address", "127.0.0.1:6543", "#db-form")
    page.click("Test connection", "#db-form")
    assert page.error_for("password").startswith("Enter the password to test the changed settings")
    page.click("Save changes", "#db-form")
    assert page.error_for("password").startswith("password: changing address, db_name, username")
    assert admin_api.ok("GET", f"/api/database/{guid}")["address"] == f"127.0.0.1:{port}"


# --- permissions -------------------------------------------------------------


def test_a_reader_sees_the_list_but_no_controls_and_the_server_refuses(
    page: Page, admin_api: Api, sqlite_dir
) -> None:
    make_sqlite(sqlite_dir, "shop.db", "CREATE TABLE items (id INTEGER PRIMARY KEY);")
    guid = register(admin_api, {"system_code": "pos", "db_type": "sqlite", "db_name": "shop.db"})
    wait_for(
        lambda: admin_api.ok("GET", f"/api/database/{guid}/discovered-tables")["tables"],
        "the scanner discovering items",
    )
    make_role(admin_api, "db-reader", ["databases:read"])
    reader = make_user(admin_api, "reader", "reader-pass-1", ["db-reader"])
    page.login("reader", "reader-pass-1")
    page.go("databases")
    within = row(guid)
    page.find(within)
    assert "pos" in page.find(within).text
    # Reading is allowed: a connection test, the discovered tables.
    page.click("Test connection", within)
    assert "1 table visible, 1 can be numbered" in page.find(f"{within} .db-test").text
    page.click("Tables (1 new)", within)
    page.see("items")
    shown = page.buttons()
    for hidden in ["Add database", "Scan now", "Edit", "Delete", "Approve", "Dismiss", "Add counter", "Custom counter…"]:
        assert hidden not in shown, (hidden, shown)

    # The server refuses the same calls.
    body = {"system_code": "x", "db_type": "sqlite", "db_name": "shop.db"}
    for method, path, payload in [
        ("POST", "/api/database/add", body),
        ("POST", "/api/database/test", body),
        ("PUT", f"/api/database/{guid}", {"system_code": "y"}),
        ("DELETE", f"/api/database/{guid}", None),
        ("POST", f"/api/database/{guid}/jobs", None),
        ("POST", f"/api/database/{guid}/discovered-tables/items/approve", None),
        ("POST", f"/api/database/{guid}/add-config", {"field_name": "n", "initial_value": 1}),
    ]:
        status, envelope = reader.call(method, path, payload)
        assert (status, envelope["code"]) == (403, 40301), (method, path, envelope)
    assert [d["system_code"] for d in admin_api.ok("GET", "/api/database/list")] == ["pos"]


# --- a phone's width -----------------------------------------------------------


def test_at_a_phone_width_the_table_scrolls_inside_its_box(admin_api: Api, server: KxyServer, sqlite_dir) -> None:
    make_sqlite(sqlite_dir, "shop.db", "CREATE TABLE items (id INTEGER PRIMARY KEY);")
    guid = register(admin_api, {"system_code": "pos", "db_type": "sqlite", "db_name": "shop.db"})
    driver, profile = new_driver()
    set_phone(driver)
    try:
        page = Page(driver, server.base_url)
        page.login(*ADMIN)
        page.go("databases")
        page.find(row(guid))
        wrap = page.find(".table-wrap")
        scroll, client = driver.execute_script("return [arguments[0].scrollWidth, arguments[0].clientWidth]", wrap)
        assert scroll > client, "the table scrolls inside .table-wrap"
        page_width = driver.execute_script("return document.documentElement.scrollWidth")
        viewport = driver.execute_script("return window.innerWidth")
        assert page_width <= viewport, (page_width, viewport)
        # The form stacks and fits.
        page.click("Add database")
        form = page.find("#db-form")
        assert form.rect["width"] <= viewport
        assert not console_problems(driver.get_log("browser"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
