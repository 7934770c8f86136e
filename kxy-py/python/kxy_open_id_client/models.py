"""Request and response models, as in kxy-open-id-client (pydantic v2)."""

from __future__ import annotations

from typing import Generic, Optional, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class SegmentRequest(BaseModel):
    """The body of ``POST /api/segment/allocate``."""

    system_code: str = Field(..., description="System code")
    db_name: str = Field(..., description="Database name")
    table_name: str = Field(..., description="Table name")
    field_name: str = Field(..., description="Field name")
    segment_count: int = Field(default=10000, ge=1, le=9223372036854775807, description="How many IDs")


class SegmentResponse(BaseModel):
    """An allocated segment: the IDs ``start`` to ``end``, both inclusive."""

    start: int = Field(..., description="First ID of the segment")
    end: int = Field(..., description="Last ID of the segment")


class ApiResponse(BaseModel, Generic[T]):
    """The server's envelope: ``code`` 0 is success."""

    code: int = 0
    msg: str = ""
    data: Optional[T] = None
    traceId: Optional[str] = None
