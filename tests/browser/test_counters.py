"""The counters screen: what each counter hands out, registering one and
raising one, as an operator uses it."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from conftest import ADMIN, Api, Page, make_role, make_user

KEY = {"system_code": "shop", "db_name": "main", "table_name": "orders", "field_name": "id"}


def counters(api: Api) -> dict[str, dict]:
    return {f'{c["system_code"]}/{c["db_name"]}/{c["table_name"]}/{c["field_name"]}': c
            for c in api.ok("GET", "/api/counters")}


def test_register_a_counter_and_see_it_allocate(page: Page, admin_api: Api) -> None:
    page.login(*ADMIN)
    page.go("counters")
    page.see("No counters yet")
    page.fill("System code", "shop")
    page.fill("Database", "main")
    page.fill("Table", "orders")
    page.fill("Field", "id")
    page.fill("Start (highest ID in use)", "1000")
    page.click("Register")
    page.see("counter shop:main:orders:id created; the next ID is 1001.")
    assert counters(admin_api)["shop/main/orders/id"]["current"] == 1000

    # Programs allocate; the screen shows the new value, when, and how fast.
    for _ in range(2):
        admin_api.ok("POST", "/api/segment/allocate", {**KEY, "segment_count": 50})
    page.driver.refresh()
    page.go("counters")
    page.see("1,100")
    row = page.find("tbody tr").text
    assert "s ago" in row and "allocating" in row, row
    assert "years" in row, row  # the runway at this pace
    label = page.find("svg.sparkline").get_attribute("aria-label")
    assert "100 in all" in label, label


def test_a_duplicate_counter_is_refused_and_changes_nothing(page: Page, admin_api: Api) -> None:
    admin_api.ok("POST", "/api/counters", {**KEY, "start": 5})
    page.login(*ADMIN)
    page.go("counters")
    page.fill("System code", "shop")
    page.fill("Database", "main")
    page.fill("Table", "orders")
    page.fill("Start (highest ID in use)", "99")
    page.click("Register")
    assert "already exists" in page.alert_text()
    assert counters(admin_api)["shop/main/orders/id"]["current"] == 5


def test_bad_input_is_shown_next_to_its_field(page: Page, admin_api: Api) -> None:
    page.login(*ADMIN)
    page.go("counters")
    page.fill("System code", "shop system!")
    page.fill("Database", "main")
    page.fill("Table", "orders")
    page.click("Register")
    assert "system_code" in page.error_for("system_code")
    page.fill("System code", "shop")
    page.fill("Start (highest ID in use)", "-3")
    page.click("Register")
    assert "0 or more" in page.error_for("start")
    assert counters(admin_api) == {}


def test_raise_a_counter(page: Page, admin_api: Api) -> None:
    admin_api.ok("POST", "/api/counters", {**KEY, "start": 5})
    page.login(*ADMIN)
    page.go("counters")
    page.find('button[aria-label="Raise shop/main/orders/id"]').click()
    page.fill("Raise orders.id to", "5000")
    page.click("Raise", "form.raise")
    page.see("raised")
    assert counters(admin_api)["shop/main/orders/id"]["current"] == 5000
    allocated = admin_api.ok("POST", "/api/segment/allocate", {**KEY, "segment_count": 1})
    assert allocated["start"] == 5001, allocated


def test_a_reader_sees_counters_but_no_controls(page: Page, admin_api: Api, server) -> None:
    admin_api.ok("POST", "/api/counters", {**KEY, "start": 5})
    make_role(admin_api, "counter_reader", ["counters:read"])
    reader = make_user(admin_api, "carol", "carol-pass-1", ["counter_reader"])
    page.login("carol", "carol-pass-1")
    page.go("counters")
    page.see("shop/main/orders/id")
    assert "Register" not in page.buttons() and "Raise" not in page.buttons()
    assert page.driver.find_elements(By.ID, "register-counter") == []
    # The server refuses what the page hides.
    status, envelope = reader.call("POST", "/api/counters", {**KEY, "table_name": "x", "start": 0})
    assert (status, envelope["code"]) == (403, 40301)
    status, envelope = reader.call("POST", "/api/counters/raise", {**KEY, "to": 9})
    assert (status, envelope["code"]) == (403, 40301)
    assert counters(admin_api)["shop/main/orders/id"]["current"] == 5
