"""Which kxy_open_id_client this venv has: the published 0.2.1 or kxy-py (>= 1).

Tests use this only where the outcome legitimately differs (see README.md,
"Deliberate differences"), and in ``xfail`` marks for the differences kxy-py
still has to fix (issue 13).
"""

from importlib.metadata import version

VERSION = version("kxy-open-id-client")
IS_KXY_PY = int(VERSION.split(".")[0]) >= 1
IS_PUBLISHED = VERSION == "0.2.1"
