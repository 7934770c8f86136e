"""A hostile user's data in another user's admin page: names, URLs,
settings and the server's own messages that echo them are shown as text,
never run or parsed as markup. Any injected handler would also be refused
by the page's Content-Security-Policy, which the page fixture turns into a
failure (a CSP report in the console)."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from conftest import ADMIN, Api, Page

MARK = "window.__kxy_xss = 1"
PAYLOADS = [
    f'<img src=x onerror="{MARK}">',
    f'"><svg onload="{MARK}">',
    f"<script>{MARK}</script>",
    f"javascript:{MARK}//",
]


def injected(page: Page) -> list[str]:
    """Whatever the payloads could have turned into: a flag set by script,
    elements or attributes the page never renders itself."""
    return page.driver.execute_script(
        """
        const found = [];
        if (window.__kxy_xss) found.push("script ran");
        for (const el of document.querySelectorAll("#app img, #app svg:not(.sparkline), #app script, #app iframe")) {
          found.push(el.outerHTML);
        }
        for (const el of document.querySelectorAll("#app *")) {
          for (const attr of el.attributes) {
            if (/^on/i.test(attr.name) || /^\\s*javascript:/i.test(attr.value) && /^(href|src|action)$/i.test(attr.name)) {
              found.push(`${el.tagName} ${attr.name}=${attr.value}`);
            }
          }
        }
        return found;
        """
    )


def test_hostile_names_show_as_text_on_every_screen(page: Page, admin_api: Api) -> None:
    for payload in PAYLOADS:
        admin_api.ok("POST", "/api/keys", {"name": payload})
        admin_api.ok(
            "POST",
            "/api/credentials",
            {"name": payload, "model_id": payload, "api_key": "sk-secret-1", "config": {"note": payload}},
        )
    page.login(*ADMIN)
    page.go("keys")
    for payload in PAYLOADS:
        page.see(payload)
    assert injected(page) == []
    page.go("credentials")
    for payload in PAYLOADS:
        page.see(payload)
    assert injected(page) == []


def test_a_server_message_echoing_input_shows_as_text(page: Page, admin_api: Api) -> None:
    page.login(*ADMIN)
    page.go("counters")
    payload = PAYLOADS[0]
    page.fill("System code", payload)
    page.fill("Database", payload)
    page.fill("Table", "t")
    page.click("Register")
    # The server refuses the name; whatever it says shows as text.
    page.find('[role="alert"]')
    assert injected(page) == []
    errors = page.driver.find_elements(By.CSS_SELECTOR, ".error")
    assert errors and all(e.find_elements(By.CSS_SELECTOR, "*") == [] for e in errors)


def test_a_hostile_base_url_is_no_link(page: Page, admin_api: Api) -> None:
    # The server takes http(s) URLs only; a script URL is refused outright.
    status, envelope = admin_api.call(
        "POST", "/api/credentials", {"model_id": "m", "api_key": "", "base_url": f"javascript:{MARK}"}
    )
    assert status == 400 and "base_url" in envelope["msg"], envelope
    admin_api.ok("POST", "/api/credentials", {"model_id": "m", "api_key": "", "base_url": 'https://x.example/"><img src=x>'})
    page.login(*ADMIN)
    page.go("credentials")
    page.see('https://x.example/"><img src=x>')
    assert page.driver.find_elements(By.CSS_SELECTOR, "#app a[href*='x.example']") == []
    assert injected(page) == []
