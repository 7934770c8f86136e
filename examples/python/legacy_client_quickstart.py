"""Allocate IDs from kxy-server with the existing Python client, unchanged.

Start a server and register the counter first (README, "Quick start"):

    cargo run --release -p kxy-server -- counters add \
        --system my-system --db my_database --table users --field id --start 0
    cargo run --release -p kxy-server

then:

    pip install kxy-open-id-client==0.2.1
    python examples/python/legacy_client_quickstart.py
"""

import os

from kxy_open_id_client import IdGenerator, SegmentClient

client = SegmentClient(base_url=os.environ.get("KXY_URL", "http://localhost:5801"))

# One segment: the IDs start..end (inclusive) are yours alone.
segment = client.allocate_segment(
    system_code="my-system",
    db_name="my_database",
    table_name="users",
    field_name="id",
    segment_count=10000,
)
print(f"Allocated IDs: {segment.start} to {segment.end}")

# A generator fetches segments as needed and hands out IDs one by one.
id_gen = IdGenerator(client, "my-system", "my_database", "users", "id", segment_count=1000)
print(f"Generated IDs: {[id_gen.next_id() for _ in range(3)]}")
