"""The API docs at /docs: Swagger UI from the binary, on /openapi.json,
under the same strict Content-Security-Policy as the admin page, with no
request leaving the server."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from conftest import Page


def test_the_docs_render_every_operation_offline(page: Page, server) -> None:
    page.driver.get(server.base_url + "/docs")
    page.find("#swagger-ui .information-container")
    page.see("kxy")
    operations = page.wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock") or False
    )
    # Every route of the server is there (56 and more), grouped by tag.
    assert len(operations) >= 56, len(operations)
    text = page.text()
    for path in ["/api/segment/allocate", "/api/auth/session/refresh", "/api/counters", "/api/database/{guid}/test"]:
        assert path in text, path
    # Open one operation: its answer shows the envelope and the auth schemes exist.
    page.find('.opblock-summary-path[data-path="/api/segment/allocate"]').click()
    page.see("traceId")
    page.find(".authorize").click()
    page.see("X-API-Key")
    page.see("X-API-Secret")
    # Nothing was fetched from anywhere but this server.
    resources = page.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    foreign = [r for r in resources if not r.startswith(server.base_url) and not r.startswith("data:")]
    assert foreign == [], foreign
