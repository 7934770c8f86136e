"""Screenshots of every screen of the admin page, with example data
(scripts/screenshots runs this)."""

from __future__ import annotations

import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from conftest import ADMIN, MASTER_KEY, Api, Page, make_role, new_driver, set_phone  # noqa: E402
from kxy_server import KxyServer  # noqa: E402

SCREENS = ["counters", "databases", "keys", "credentials", "users", "roles", "access", "account"]


def seed(api: Api, sqlite_dir: pathlib.Path) -> None:
    """Example data a real installation might hold."""
    import sqlite3
    import time

    db = sqlite3.connect(sqlite_dir / "shop.db")
    db.executescript(
        "CREATE TABLE payments (id INTEGER PRIMARY KEY); INSERT INTO payments VALUES (977);"
        "CREATE TABLE refunds (id INTEGER PRIMARY KEY); CREATE TABLE tags (name TEXT PRIMARY KEY);"
    )
    db.commit()
    db.close()
    api.ok("POST", "/api/database/add", {"system_code": "pos", "db_type": "sqlite", "db_name": "shop.db"})
    deadline = time.time() + 30
    while time.time() < deadline and not any(d.get("last_scan") for d in api.ok("GET", "/api/database/list")):
        time.sleep(0.3)
    orders = api.ok("POST", "/api/access/endpoints", {"method": "GET", "path": "/orders/{id}"})
    api.ok("POST", "/api/access/endpoints", {"method": "POST", "path": "/orders"})
    for table, start, bursts in [("orders", 10_000, 6), ("users", 500, 2), ("invoices", 0, 0)]:
        key = {"system_code": "shop", "db_name": "main", "table_name": table, "field_name": "id"}
        api.ok("POST", "/api/counters", {**key, "start": start})
        for _ in range(bursts):
            api.ok("POST", "/api/segment/allocate", {**key, "segment_count": 250})
    make_role(api, "operator", ["counters:read", "counters:write", "databases:read"])
    olga = api.ok("POST", "/api/users", {"username": "olga", "password": "olga-pass-1",
                                        "email": "olga@example.com", "roles": ["operator"]})
    api.ok("POST", "/api/access/grants", {"subject": {"type": "user", "id": olga["id"]},
                                          "endpoint_id": orders["id"], "level": "read"})
    api.ok("POST", "/api/keys", {"name": "order-service", "key_type": "local"})
    api.ok("POST", "/api/credentials", {"name": "openai-prod", "model_id": "gpt-4o",
                                       "base_url": "https://api.example.com/v1", "api_key": "sk-example-0123456789abcdef"})


def full_page(driver, path: pathlib.Path) -> None:
    """The whole page, not only what fits the window (at most 2400 px)."""
    import base64

    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def main(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_dir = pathlib.Path(tmp) / "sqlite"
        sqlite_dir.mkdir()
        server = KxyServer(pathlib.Path(tmp) / "data", "--master-key", MASTER_KEY,
                           "--sqlite-dir", str(sqlite_dir), "--scan-interval", "1")
        try:
            api = Api(server.base_url)
            for width, height, suffix in [(1280, 900, ""), (390, 844, "-phone")]:
                driver, _ = new_driver()
                if suffix:
                    set_phone(driver, width, height)
                try:
                    page = Page(driver, server.base_url)
                    if not suffix:
                        page.open()
                        page.see("Welcome to kxy")
                        page.screenshot(out / "first-run.png")
                        api.ok("POST", "/api/auth/init-user", {"username": ADMIN[0], "password": ADMIN[1]})
                        seed(api.login(*ADMIN), sqlite_dir)
                        page.open()
                        page.find("#login")
                        page.screenshot(out / "login.png")
                    page.login(*ADMIN)
                    for screen in SCREENS:
                        page.go(screen)
                        page.find("#screen-title")
                        driver.execute_script("return new Promise(r => setTimeout(r, 300))")
                        full_page(driver, out / f"{screen}{suffix}.png")
                    if not suffix:
                        driver.get(server.base_url + "/docs")
                        driver.execute_script("return new Promise(r => setTimeout(r, 1500))")
                        page.screenshot(out / "docs.png")
                finally:
                    driver.quit()
        finally:
            server.stop()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
