"""kxy_open_id_client: kxy's Python client, a drop-in for kxy-open-id-client.

Same import name, classes and calls as kxy-open-id-client 0.2.1; IDs are
handed out by a Rust core from a local, prefetched cache of segments.
"""

from ._native import __version__
from .client import (
    AsyncIdGenerator,
    AsyncIdGeneratorFactory,
    IdGenerator,
    IdGeneratorFactory,
    SegmentClient,
)
from .exceptions import (
    OpenIdAPIError,
    OpenIdClientError,
    OpenIdConnectionError,
    OpenIdInvalidArgumentError,
    OpenIdStoreError,
    OpenIdTimeoutError,
)
from .models import ApiResponse, SegmentRequest, SegmentResponse

__all__ = [
    "SegmentClient",
    "IdGenerator",
    "AsyncIdGenerator",
    "IdGeneratorFactory",
    "AsyncIdGeneratorFactory",
    "SegmentRequest",
    "SegmentResponse",
    "ApiResponse",
    "OpenIdClientError",
    "OpenIdAPIError",
    "OpenIdConnectionError",
    "OpenIdInvalidArgumentError",
    "OpenIdStoreError",
    "OpenIdTimeoutError",
]
