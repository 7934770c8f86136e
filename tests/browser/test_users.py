"""The users screen: the list, a new user, a user's e-mail and roles,
deactivation, a new password, unlocking and deletion, in the browser; and
that nobody hands on rights they do not hold, nor sees what they may not do."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from conftest import ADMIN, Api, Page, make_role, make_user


def row(page: Page, first_cell: str) -> WebElement:
    """The table row whose first cell reads `first_cell`."""
    xpath = f"//tr[td[1][normalize-space()='{first_cell}']]"
    return page.wait.until(lambda d: d.find_element(By.XPATH, xpath), f"no row {first_cell!r}")


def cells(page: Page, first_cell: str) -> list[str]:
    return [td.text.strip() for td in row(page, first_cell).find_elements(By.TAG_NAME, "td")]


def user_by_name(api: Api, username: str) -> dict:
    users = api.ok("GET", "/api/users?page_size=200")["items"]
    return next(u for u in users if u["username"] == username)


def open_user(page: Page, username: str) -> None:
    row(page, username).find_element(By.XPATH, ".//button[normalize-space()='Edit']").click()
    page.find("#edit-user")
    page.see(f"User {username}")


def test_create_a_user_with_roles_then_change_email_and_roles(page: Page, admin_api: Api) -> None:
    make_role(admin_api, "ops", ["counters:read"])
    make_role(admin_api, "auditor", ["users:read"])
    page.login(*ADMIN)
    page.go("users")
    assert cells(page, "admin")[3] == "active"
    page.fill("Username", "carol", "#new-user")
    page.fill("Password", "carol-pass-1", "#new-user")
    page.fill("E-mail (optional)", "carol@example.com", "#new-user")
    page.field("ops", "#new-user").click()
    page.field("Username", "#new-user").send_keys(Keys.ENTER)  # forms submit with Enter
    page.see("user created: carol")
    assert cells(page, "carol")[1:5] == ["carol@example.com", "ops", "active", "no"]
    carol = user_by_name(admin_api, "carol")
    assert carol["email"] == "carol@example.com" and carol["roles"] == ["ops"]
    admin_api.login("carol", "carol-pass-1")
    # The password never shows.
    page.not_see("carol-pass-1")

    open_user(page, "carol")
    page.fill("E-mail", "carol@corp.example", "#edit-user")
    page.field("ops", "#edit-user").click()
    page.field("auditor", "#edit-user").click()
    page.click("Save changes", "#edit-user")
    page.see("user updated: carol")
    carol = admin_api.ok("GET", f"/api/users/{carol['id']}")
    assert carol["email"] == "carol@corp.example" and carol["roles"] == ["auditor"]
    assert cells(page, "carol")[1:3] == ["carol@corp.example", "auditor"]


def test_deactivate_reactivate_reset_password_unlock_and_delete(page: Page, admin_api: Api, server) -> None:
    make_user(admin_api, "dave", "dave-pass-1", [])
    dave_id = user_by_name(admin_api, "dave")["id"]
    # Five wrong passwords lock the account.
    for _ in range(5):
        Api(server.base_url).call("POST", "/api/auth/login", {"username": "dave", "password": "wrong-pass-1"})
    assert admin_api.ok("GET", f"/api/users/{dave_id}")["locked_for"]
    page.login(*ADMIN)
    page.go("users")
    assert cells(page, "dave")[4] == "locked"

    open_user(page, "dave")
    page.click("Unlock", "#edit-user")
    page.see("unlocked: dave")
    assert admin_api.ok("GET", f"/api/users/{dave_id}")["locked_for"] is None
    assert cells(page, "dave")[4] == "no"

    page.click("Deactivate", "#edit-user")
    page.accept_confirm()
    page.see("deactivated: dave")
    assert admin_api.ok("GET", f"/api/users/{dave_id}")["active"] is False
    assert cells(page, "dave")[3] == "inactive"
    page.click("Reactivate", "#edit-user")
    page.see("reactivated: dave")
    assert admin_api.ok("GET", f"/api/users/{dave_id}")["active"] is True

    # A weak new password is refused next to the field.
    page.fill("New password", "short", "#reset-password")
    page.click("Reset password", "#reset-password")
    page.accept_confirm()
    assert "password" in page.error_for("password").lower()
    page.fill("New password", "dave-pass-2", "#reset-password")
    page.click("Reset password", "#reset-password")
    page.accept_confirm()
    page.see("password reset")
    admin_api.login("dave", "dave-pass-2")

    page.click("Delete user", "#edit-user")
    page.accept_confirm()
    page.see("user deleted: dave")
    status, _ = admin_api.call("GET", f"/api/users/{dave_id}")
    assert status == 404
    assert page.driver.find_elements(By.XPATH, "//tr[td[1][normalize-space()='dave']]") == []


def test_a_taken_username_and_a_weak_password_show_next_to_their_fields(page: Page, admin_api: Api) -> None:
    make_user(admin_api, "erin", "erin-pass-1", [])
    page.login(*ADMIN)
    page.go("users")
    page.fill("Username", "erin", "#new-user")
    page.fill("Password", "erin-pass-2", "#new-user")
    page.click("Create user", "#new-user")
    assert page.error_for("username") == 'username "erin" is taken'
    page.fill("Username", "frank", "#new-user")
    page.fill("Password", "frank", "#new-user")
    page.click("Create user", "#new-user")
    assert "password" in page.error_for("password").lower()
    # A bad e-mail address, by the server's rule.
    page.fill("Password", "frank-pass-1", "#new-user")
    page.fill("E-mail (optional)", "not-an-address", "#new-user")
    page.click("Create user", "#new-user")
    assert page.error_for("email") == "email: not an e-mail address"
    names = [u["username"] for u in admin_api.ok("GET", "/api/users")["items"]]
    assert names == ["admin", "erin"]


def test_users_write_cannot_hand_on_rights_it_lacks(page: Page, admin_api: Api) -> None:
    make_role(admin_api, "user-admin", ["users:read", "users:write", "roles:read"])
    make_role(admin_api, "helpdesk", ["users:read"])
    grace = make_user(admin_api, "grace", "grace-pass-1", ["user-admin"])
    make_user(admin_api, "heidi", "heidi-pass-1", [])
    page.login("grace", "grace-pass-1")
    page.go("users")
    # A new user with the admin role: the server's refusal shows by the roles.
    page.fill("Username", "mallory", "#new-user")
    page.fill("Password", "mallory-pass-1", "#new-user")
    page.field("admin", "#new-user").click()
    page.click("Create user", "#new-user")
    refusal = page.error_for("roles")
    assert refusal.startswith("missing permission *:*") and "you cannot grant" in refusal
    # Nor can an existing user be given it.
    open_user(page, "heidi")
    page.field("admin", "#edit-user").click()
    page.click("Save changes", "#edit-user")
    assert page.error_for("roles").startswith("missing permission *:*")
    # The server refuses the calls themselves.
    status, envelope = grace.call(
        "POST", "/api/users", {"username": "mallory", "password": "mallory-pass-1", "roles": ["admin"]}
    )
    assert (status, envelope["code"]) == (403, 40301)
    heidi = user_by_name(admin_api, "heidi")
    status, envelope = grace.call("PUT", f"/api/users/{heidi['id']}", {"roles": ["admin"]})
    assert (status, envelope["code"]) == (403, 40301)
    assert admin_api.ok("GET", f"/api/users/{heidi['id']}")["roles"] == []
    assert "mallory" not in [u["username"] for u in admin_api.ok("GET", "/api/users")["items"]]
    # What grace holds she may hand on.
    page.field("admin", "#edit-user").click()
    page.field("helpdesk", "#edit-user").click()
    page.click("Save changes", "#edit-user")
    page.see("user updated: heidi")
    assert admin_api.ok("GET", f"/api/users/{heidi['id']}")["roles"] == ["helpdesk"]


def test_users_read_sees_the_list_and_no_controls(page: Page, admin_api: Api) -> None:
    make_role(admin_api, "viewer", ["users:read"])
    ivan = make_user(admin_api, "ivan", "ivan-pass-1", ["viewer"])
    page.login("ivan", "ivan-pass-1")
    page.go("users")
    row(page, "admin")
    assert cells(page, "ivan")[2] == "viewer"
    assert page.buttons() == ["Log out"]
    assert page.driver.find_elements(By.ID, "new-user") == []
    status, envelope = ivan.call("POST", "/api/users", {"username": "judy", "password": "judy-pass-1"})
    assert (status, envelope["code"]) == (403, 40301)
    admin = user_by_name(admin_api, "admin")
    status, envelope = ivan.call("PUT", f"/api/users/{admin['id']}", {"email": "x@example.com"})
    assert (status, envelope["code"]) == (403, 40301)


def test_the_list_pages_through_many_users(page: Page, admin_api: Api) -> None:
    for i in range(21):
        admin_api.ok("POST", "/api/users", {"username": f"user{i:02}", "password": "user-pass-123"})
    page.login(*ADMIN)
    page.go("users")
    page.see("Page 1 of 2 (22 users)")
    row(page, "user18")
    assert page.driver.find_elements(By.XPATH, "//tr[td[1][normalize-space()='user19']]") == []
    page.click("Next")
    page.see("Page 2 of 2 (22 users)")
    row(page, "user20")
    row(page, "user19")
    page.click("Previous")
    row(page, "admin")
