"""The roles screen: a role made from the permission catalog and typed
wildcards, changed and deleted, in the browser; a bad permission, a role
with rights the caller lacks and the built-in admin role refused; and a
reader sees no controls."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from conftest import ADMIN, Api, Page, make_role, make_user


def row(page: Page, first_cell: str) -> WebElement:
    """The table row whose first cell reads `first_cell` (a badge after the
    name is part of the cell)."""
    xpath = f"//tr[td[1][normalize-space()='{first_cell}' or starts-with(normalize-space(), '{first_cell} ')]]"
    return page.wait.until(lambda d: d.find_element(By.XPATH, xpath), f"no row {first_cell!r}")


def row_buttons(page: Page, first_cell: str) -> list[str]:
    return [b.text.strip() for b in row(page, first_cell).find_elements(By.TAG_NAME, "button")]


def clear(element: WebElement) -> None:
    """Empties an input as a person does (select all, delete), so the page
    hears it; WebDriver's clear() sends no input event."""
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.BACKSPACE)


def roles(api: Api) -> dict[str, dict]:
    return {r["name"]: r for r in api.ok("GET", "/api/roles")}


def test_create_change_and_delete_a_role(page: Page, admin_api: Api) -> None:
    make_user(admin_api, "kim", "kim-pass-1", [])
    page.login(*ADMIN)
    page.go("roles")
    row(page, "admin")
    # The catalog is the server's.
    catalog = admin_api.ok("GET", "/api/permissions")
    shown = [label.text for label in page.driver.find_elements(By.CSS_SELECTOR, "#new-role .checks label")]
    assert shown == catalog and "users:read" in shown

    page.fill("Name", "ops", "#new-role")
    page.fill("Description", "runs the counters", "#new-role")
    page.field("users:read", "#new-role").click()
    page.fill("Other permissions", "counters:*", "#new-role")
    page.click("Create role", "#new-role")
    page.see("role created: ops")
    assert roles(admin_api)["ops"]["permissions"] == ["users:read", "counters:*"]
    assert roles(admin_api)["ops"]["description"] == "runs the counters"
    assert "counters:*" in row(page, "ops").text

    row(page, "ops").find_element(By.XPATH, ".//button[normalize-space()='Edit']").click()
    page.see("Role ops")
    # The typed wildcard is back in its field, the picked one ticked.
    assert page.field("Other permissions", "#edit-role").get_attribute("value") == "counters:*"
    assert page.field("users:read", "#edit-role").is_selected()
    page.fill("Description", "reads counters", "#edit-role")
    page.field("users:read", "#edit-role").click()
    page.field("counters:read", "#edit-role").click()
    clear(page.field("Other permissions", "#edit-role"))
    page.click("Save changes", "#edit-role")
    page.see("role updated: ops")
    assert roles(admin_api)["ops"]["permissions"] == ["counters:read"]
    assert roles(admin_api)["ops"]["description"] == "reads counters"

    # Deleting the role takes it from its members.
    kim = next(u for u in admin_api.ok("GET", "/api/users")["items"] if u["username"] == "kim")
    admin_api.ok("PUT", f"/api/users/{kim['id']}", {"roles": ["ops"]})
    row(page, "ops").find_element(By.XPATH, ".//button[normalize-space()='Delete']").click()
    page.accept_confirm()
    page.see("role deleted: ops")
    assert "ops" not in roles(admin_api)
    assert admin_api.call("GET", "/api/roles/ops")[0] == 404
    assert page.driver.find_elements(By.XPATH, "//tr[td[1][normalize-space()='ops']]") == []
    assert admin_api.ok("GET", f"/api/users/{kim['id']}")["roles"] == []


def test_a_bad_permission_and_a_bad_name_show_next_to_their_fields(page: Page, admin_api: Api) -> None:
    page.login(*ADMIN)
    page.go("roles")
    page.fill("Name", "ops", "#new-role")
    page.fill("Other permissions", "counters:read, Bogus", "#new-role")
    page.click("Create role", "#new-role")
    message = page.error_for("more_permissions")
    assert '"Bogus" is not a permission' in message
    page.fill("Name", "Ops Team", "#new-role")
    page.fill("Other permissions", "counters:read", "#new-role")
    page.click("Create role", "#new-role")
    assert page.error_for("name") == "name: use 1 to 64 characters from a-z 0-9 _ -"
    # A name that is taken, and the built-in one.
    make_role(admin_api, "ops", ["users:read"])
    page.fill("Name", "ops", "#new-role")
    page.click("Create role", "#new-role")
    assert page.error_for("name") == 'role "ops" exists'
    page.fill("Name", "admin", "#new-role")
    page.click("Create role", "#new-role")
    assert page.error_for("name") == "the admin role is built in and cannot be changed"
    assert roles(admin_api)["ops"]["permissions"] == ["users:read"]
    assert list(roles(admin_api)) == ["admin", "ops"]


def test_the_admin_role_offers_no_change_and_the_server_refuses_one(page: Page, admin_api: Api) -> None:
    make_role(admin_api, "ops", ["counters:read"])
    page.login(*ADMIN)
    page.go("roles")
    assert row_buttons(page, "admin") == []
    assert "built in" in row(page, "admin").text
    assert row_buttons(page, "ops") == ["Edit", "Delete"]
    status, envelope = admin_api.call("DELETE", "/api/roles/admin")
    assert status == 409 and "built in" in envelope["msg"]


def test_roles_write_cannot_create_a_role_with_more_rights(page: Page, admin_api: Api) -> None:
    make_role(admin_api, "role-admin", ["roles:read", "roles:write"])
    lee = make_user(admin_api, "lee", "lee-pass-1", ["role-admin"])
    page.login("lee", "lee-pass-1")
    page.go("roles")
    page.fill("Name", "sneaky", "#new-role")
    page.fill("Other permissions", "*:*", "#new-role")
    page.click("Create role", "#new-role")
    assert page.error_for("permissions").startswith("missing permission *:*")
    status, envelope = lee.call("POST", "/api/roles", {"name": "sneaky", "permissions": ["*:*"]})
    assert (status, envelope["code"]) == (403, 40301)
    assert "sneaky" not in roles(admin_api)


def test_roles_read_sees_roles_and_no_controls(page: Page, admin_api: Api) -> None:
    make_role(admin_api, "viewer", ["roles:read"])
    mia = make_user(admin_api, "mia", "mia-pass-1", ["viewer"])
    page.login("mia", "mia-pass-1")
    page.go("roles")
    assert "roles:read" in row(page, "viewer").text
    assert page.buttons() == ["Log out"]
    assert page.driver.find_elements(By.ID, "new-role") == []
    status, envelope = mia.call("POST", "/api/roles", {"name": "more", "permissions": ["roles:read"]})
    assert (status, envelope["code"]) == (403, 40301)
    status, envelope = mia.call("DELETE", "/api/roles/viewer")
    assert (status, envelope["code"]) == (403, 40301)
