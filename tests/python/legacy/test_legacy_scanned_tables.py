"""The published client numbers rows of a scanned MariaDB table.

kxy scans a real database, registers each numbered table's counter above
its largest ID, and kxy-open-id-client 0.2.1's IdGenerator hands out IDs
that go into the table without a single key conflict.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from kxy_open_id_client import IdGenerator, SegmentClient

from kxy_server import KxyServer, _call


def mysql(*args: str) -> str:
    result = subprocess.run(["mysql", "-h127.0.0.1", "-uroot", "-N", "-B", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return result.stdout


@pytest.fixture
def mariadb_database():
    try:
        mysql("-e", "SELECT 1")
    except (OSError, RuntimeError) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"this test needs MariaDB at 127.0.0.1:3306 and CI=true: {error}")
        pytest.skip(f"this test needs MariaDB at 127.0.0.1:3306: {error}")
    name = f"kxyt_py_{uuid.uuid4().hex[:12]}"
    mysql("-e", f"CREATE DATABASE {name}")
    yield name
    mysql("-e", f"DROP DATABASE IF EXISTS {name}")


def test_ids_from_a_scanned_counter_insert_without_conflicts(tmp_path, mariadb_database) -> None:
    db = mariadb_database
    mysql(db, "-e", "CREATE TABLE orders (id BIGINT PRIMARY KEY, note TEXT); "
                    "INSERT INTO orders VALUES (1, 'old'), (2, 'old'), (907, 'old');")
    server = KxyServer(tmp_path / "data")
    try:
        login = {"username": "root", "password": "root password 1"}
        _call(server.base_url, "POST", "/api/auth/init-user", login)
        token = _call(server.base_url, "POST", "/api/auth/login", login)["access_token"]
        database = {"system_code": "shop", "db_type": "mysql", "address": "127.0.0.1:3306",
                    "db_name": db, "username": "root", "password": ""}
        guid = _call(server.base_url, "POST", "/api/database/add", database, token)["guid"]
        report = _call(server.base_url, "POST", f"/api/database/initialize/{guid}", {}, token)
        assert report["registered"][0]["next_id"] == 908

        ids = IdGenerator(SegmentClient(server.base_url), "shop", db, "orders", "id", segment_count=500)
        new_ids = [ids.next_id() for _ in range(2000)]
        assert new_ids[0] == 908
        values = ",".join(f"({i}, 'new')" for i in new_ids)
        mysql(db, "-e", f"INSERT INTO orders VALUES {values}")
        assert mysql(db, "-e", "SELECT COUNT(*) FROM orders").strip() == "2003"
    finally:
        server.stop()
