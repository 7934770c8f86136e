"""Times ID generation in one Python process; prints one JSON line.

Usage: python python_ids.py BASE_URL (legacy|kxy|kxy-adaptive)

Every mode times uuid.uuid4() in the same process as the baseline. The
generator is warmed first, so the timed loop measures steady state.
`legacy` and `kxy` ask for segments of 10,000, the published client's
default; `kxy-adaptive` lets kxy grow them (adaptive=True).
"""

import json
import sys
import time
import uuid

from kxy_open_id_client import IdGenerator, SegmentClient


def rate(fn, calls):
    started = time.perf_counter()
    fn(calls)
    return calls / (time.perf_counter() - started)


def loop_uuid(calls):
    u = uuid.uuid4
    for _ in range(calls):
        u()


def main():
    base_url, mode = sys.argv[1], sys.argv[2]
    options = {"adaptive": True} if mode == "kxy-adaptive" else {}
    ids = IdGenerator(SegmentClient(base_url), "bench", "db", f"py_{mode.replace('-', '_')}", "id", 10000, **options)
    next_id = ids.next_id

    def loop_next_id(calls):
        for _ in range(calls):
            next_id()

    loop_next_id(200_000)
    calls = 1_000_000 if mode == "legacy" else 10_000_000
    result = {
        "mode": mode,
        "uuid4_per_s": rate(loop_uuid, 1_000_000),
        "next_id_per_s": rate(loop_next_id, calls),
        "next_id_calls": calls,
    }
    if mode != "legacy":
        def loop_next_ids(batches):
            total = 0
            for _ in range(batches):
                total += len(ids.next_ids(1000))
            return total

        started = time.perf_counter()
        total = loop_next_ids(50_000)
        result["next_ids_1000_ids_per_s"] = total / (time.perf_counter() - started)
    print(json.dumps(result))


main()
