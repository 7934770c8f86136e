"""The access screen: endpoints defined, opened and deleted, grants to a
user and to a role made and deleted, and the access check, in the browser;
refusals shown where they belong; and each part shown only to those who
hold its permission, the server refusing the rest."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from conftest import ADMIN, Api, Page, make_role, make_user


def row(page: Page, column: int, text: str) -> WebElement:
    """The table row whose cell `column` (from 1) reads `text`."""
    xpath = f"//tr[td[{column}][normalize-space()='{text}']]"
    return page.wait.until(lambda d: d.find_element(By.XPATH, xpath), f"no row with {text!r}")


def rows(page: Page, column: int, text: str) -> list[WebElement]:
    return page.driver.find_elements(By.XPATH, f"//tr[td[{column}][normalize-space()='{text}']]")


def click_in(element: WebElement, text: str) -> None:
    element.find_element(By.XPATH, f".//button[normalize-space()='{text}']").click()


def user_id(api: Api, username: str) -> str:
    return next(u["id"] for u in api.ok("GET", "/api/users?page_size=200")["items"] if u["username"] == username)


def endpoint(api: Api, method: str, path: str) -> dict:
    return api.ok("POST", "/api/access/endpoints", {"method": method, "path": path})


def test_define_open_and_delete_endpoints(page: Page, admin_api: Api) -> None:
    page.login(*ADMIN)
    page.go("access")
    page.see("No endpoints registered.")
    page.choose("Method", "POST", "#new-endpoint")
    page.fill("Path", "/orders/{id}", "#new-endpoint")
    page.click("Add endpoint", "#new-endpoint")
    page.see("endpoint registered: POST /orders/{id}")
    [stored] = admin_api.ok("GET", "/api/access/endpoints")
    assert (stored["method"], stored["path"], stored["require_auth"]) == ("POST", "/orders/{id}", True)
    assert row(page, 2, "/orders/{id}").text.startswith("POST /orders/{id} required")

    # The server's refusals show next to the path.
    page.fill("Path", "orders", "#new-endpoint")
    page.click("Add endpoint", "#new-endpoint")
    assert page.error_for("path") == 'endpoint: path "orders": must start with /'
    page.fill("Path", "/orders/{id}", "#new-endpoint")
    page.click("Add endpoint", "#new-endpoint")
    assert page.error_for("path") == "endpoint POST /orders/{id} exists"

    click_in(row(page, 2, "/orders/{id}"), "Open to everyone")
    page.accept_confirm()
    page.see("endpoint updated: POST /orders/{id}")
    assert admin_api.ok("GET", f"/api/access/endpoints/{stored['id']}")["require_auth"] is False
    assert "open to everyone" in row(page, 2, "/orders/{id}").text
    click_in(row(page, 2, "/orders/{id}"), "Require login")
    page.see("Open to everyone")
    assert admin_api.ok("GET", f"/api/access/endpoints/{stored['id']}")["require_auth"] is True

    click_in(row(page, 2, "/orders/{id}"), "Delete")
    page.accept_confirm()
    page.see("endpoint and its grants deleted: POST /orders/{id}")
    assert admin_api.ok("GET", "/api/access/endpoints") == []
    assert rows(page, 2, "/orders/{id}") == []


def test_grant_to_a_user_and_a_role_then_delete(page: Page, admin_api: Api) -> None:
    orders = endpoint(admin_api, "GET", "/orders/{id}")
    endpoint(admin_api, "DELETE", "/orders/{id}")
    make_role(admin_api, "ops", ["counters:read"])
    make_user(admin_api, "nina", "nina-pass-1", [])
    nina = user_id(admin_api, "nina")
    page.login(*ADMIN)
    page.go("access")

    page.fill("Username", "nina", "#new-grant")
    page.choose("Endpoint", "GET /orders/{id}", "#new-grant")
    page.choose("Level", "write", "#new-grant")
    page.click("Grant", "#new-grant")
    page.see("granted: write on GET /orders/{id} to user nina")
    [grant] = admin_api.ok("GET", "/api/access/grants")
    assert grant["subject"] == {"type": "user", "id": nina}
    assert (grant["endpoint_id"], grant["level"], grant["expires_at"]) == (orders["id"], "write", None)
    assert row(page, 1, "user nina").text.split()[2:] == ["GET", "/orders/{id}", "write", "never", "admin", "Delete"]

    page.choose("Grant to", "A role", "#new-grant")
    page.choose("Role", "ops", "#new-grant")
    page.choose("Endpoint", "DELETE /orders/{id}", "#new-grant")
    page.choose("Level", "read", "#new-grant")
    page.click("Grant", "#new-grant")
    page.see("granted: read on DELETE /orders/{id} to role ops")
    by_subject = {g["subject"]["id"]: g for g in admin_api.ok("GET", "/api/access/grants")}
    assert by_subject["ops"]["subject"]["type"] == "role" and by_subject["ops"]["level"] == "read"
    row(page, 1, "role ops")

    # A grant to nobody is refused next to the subject, in the server's words.
    page.choose("Grant to", "A user", "#new-grant")
    page.fill("Username", "ghost", "#new-grant")
    page.click("Grant", "#new-grant")
    assert page.error_for("subject") == "user ghost not found"
    assert len(admin_api.ok("GET", "/api/access/grants")) == 2

    click_in(row(page, 1, "user nina"), "Delete")
    page.accept_confirm()
    page.see("grant deleted: write on GET /orders/{id}")
    assert [g["subject"]["id"] for g in admin_api.ok("GET", "/api/access/grants")] == ["ops"]
    assert rows(page, 1, "user nina") == []


def test_access_write_cannot_grant_above_its_own_level(page: Page, admin_api: Api) -> None:
    orders = endpoint(admin_api, "GET", "/orders/{id}")
    make_role(admin_api, "granter", ["access:read", "access:write", "users:read"])
    oscar = make_user(admin_api, "oscar", "oscar-pass-1", ["granter"])
    make_user(admin_api, "pam", "pam-pass-1", [])
    admin_api.ok("POST", "/api/access/grants", {
        "subject": {"type": "user", "id": user_id(admin_api, "oscar")}, "endpoint_id": orders["id"], "level": "read",
    })
    page.login("oscar", "oscar-pass-1")
    page.go("access")
    # Defining endpoints needs access:admin: no such controls.
    assert page.driver.find_elements(By.ID, "new-endpoint") == []
    page.fill("Username", "pam", "#new-grant")
    page.choose("Level", "write", "#new-grant")
    page.click("Grant", "#new-grant")
    page.see("your own level there is read, and you cannot grant or revoke above it")
    body = {"subject": {"type": "user", "id": user_id(admin_api, "pam")}, "endpoint_id": orders["id"], "level": "write"}
    status, envelope = oscar.call("POST", "/api/access/grants", body)
    assert (status, envelope["code"]) == (403, 40301)
    assert len(admin_api.ok("GET", "/api/access/grants")) == 1
    # Read, which oscar holds, he may hand on.
    page.choose("Level", "read", "#new-grant")
    page.click("Grant", "#new-grant")
    page.see("granted: read on GET /orders/{id} to user pam")
    assert len(admin_api.ok("GET", "/api/access/grants")) == 2


def test_check_shows_the_verdict_and_why(page: Page, admin_api: Api) -> None:
    orders = endpoint(admin_api, "GET", "/orders/{id}")
    make_role(admin_api, "ops", [])
    make_user(admin_api, "olga", "olga-pass-1", ["ops"])
    admin_api.ok("POST", "/api/access/grants", {
        "subject": {"type": "role", "id": "ops"}, "endpoint_id": orders["id"], "level": "read",
    })
    page.login(*ADMIN)
    page.go("access")
    page.fill("Username", "olga", "#check-access")
    page.fill("Path", "/orders/42", "#check-access")
    page.field("Path", "#check-access").send_keys(Keys.ENTER)  # forms submit with Enter
    assert page.find("#check-result strong").text == "Allowed"
    assert page.find("#check-reason").text == "allowed: role ops gives read, read needed"
    # The page says what the server says.
    verdict = admin_api.ok("POST", "/api/access/check", {"subject": "olga", "method": "GET", "path": "/orders/42"})
    assert verdict["allowed"] is True and verdict["endpoint_id"] == orders["id"]
    assert f"GET /orders/{{id}} ({orders['id']})" in page.find("#check-result").text

    page.choose("Level needed", "write", "#check-access")
    page.click("Check", "#check-access")
    page.see("denied: role ops gives read, write needed")
    assert page.find("#check-result strong").text == "Denied"

    page.choose("Level needed", "As the method needs", "#check-access")
    page.choose("Method", "DELETE", "#check-access")
    page.click("Check", "#check-access")
    page.see("denied: no registered endpoint matches the request")

    page.fill("Username", "nobody", "#check-access")
    page.click("Check", "#check-access")
    page.see("denied: no such user")

    page.fill("Path", "/orders/%zz", "#check-access")
    page.click("Check", "#check-access")
    assert page.error_for("path") == "path: a % must be followed by two hex digits"
    assert page.driver.find_elements(By.ID, "check-result") == []


def test_each_part_shows_only_with_its_permission(page: Page, admin_api: Api, server) -> None:
    orders = endpoint(admin_api, "GET", "/orders/{id}")
    make_role(admin_api, "reader", ["access:read"])
    make_role(admin_api, "checker", ["access:check"])
    quinn = make_user(admin_api, "quinn", "quinn-pass-1", ["reader"])
    rita = make_user(admin_api, "rita", "rita-pass-1", ["checker"])
    admin_api.ok("POST", "/api/access/grants", {
        "subject": {"type": "role", "id": "checker"}, "endpoint_id": orders["id"], "level": "read",
    })

    # A reader sees endpoints and grants, and nothing to change them with.
    page.login("quinn", "quinn-pass-1")
    page.go("access")
    row(page, 2, "/orders/{id}")
    row(page, 1, "role checker")
    assert page.buttons() == ["Log out"]
    for form in ["new-endpoint", "new-grant", "check-access"]:
        assert page.driver.find_elements(By.ID, form) == [], form
    body = {"subject": {"type": "role", "id": "reader"}, "endpoint_id": orders["id"], "level": "read"}
    for method, path, payload in [
        ("POST", "/api/access/endpoints", {"method": "GET", "path": "/x"}),
        ("PUT", f"/api/access/endpoints/{orders['id']}", {"require_auth": False}),
        ("DELETE", f"/api/access/endpoints/{orders['id']}", None),
        ("POST", "/api/access/grants", body),
        ("POST", "/api/access/check", {"subject": "quinn", "method": "GET", "path": "/orders/1"}),
    ]:
        status, envelope = quinn.call(method, path, payload)
        assert (status, envelope["code"]) == (403, 40301), (method, path, envelope)
    page.click("Log out")

    # A checker sees only the check.
    page.login("rita", "rita-pass-1")
    assert "Access" in page.nav()
    page.go("access")
    page.find("#check-access")
    page.not_see("Endpoints")
    page.not_see("Grants")
    assert page.buttons() == ["Log out", "Check"]
    status, envelope = rita.call("GET", "/api/access/grants")
    assert (status, envelope["code"]) == (403, 40301)
    page.fill("Username", "rita", "#check-access")
    page.fill("Path", "/orders/7", "#check-access")
    page.click("Check", "#check-access")
    page.see("allowed: role checker gives read, read needed")
