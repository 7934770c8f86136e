"""kxy's Python package: IDs from a local cache, fetched ahead of need.

Start a server with registered counters (README, "Quick start"), then:

    pip install ./kxy-py
    python examples/python/quickstart.py
"""

import os

from kxy_open_id_client import IdGeneratorFactory, IdGenerator, SegmentClient

client = SegmentClient(os.environ.get("KXY_URL", "http://localhost:5801"))

# One generator per counter; share it across threads.
user_ids = IdGenerator(client, "my-system", "my_database", "users", "id")
print("first id:", user_ids.next_id())
print("a batch:", user_ids.next_ids(1000))

# Or let a factory keep one generator per table.
factory = IdGeneratorFactory(client, "my-system", "my_database")
print("orders:", factory.get_generator("orders").next_id())
