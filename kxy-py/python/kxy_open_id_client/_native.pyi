"""Type stubs of the native module (Rust, pyo3)."""

from typing import Dict, List, Optional, Sequence, Tuple, Union

__version__: str

class NativeSegmentClient:
    def __new__(
        cls,
        base_url: Union[str, Sequence[str]],
        timeout: Optional[float] = 30.0,
        verify_ssl: bool = True,
        headers: Optional[Dict[str, str]] = None,
        *,
        api_key: Optional[str] = None,
        connect_timeout: float = 1.0,
    ) -> "NativeSegmentClient": ...
    @property
    def base_urls(self) -> List[str]: ...
    @property
    def discarded_segments(self) -> int:
        """Segments this client discarded (another store than the pinned
        one, or not above what this process had received)."""
    def _allocate(
        self, system_code: str, db_name: str, table_name: str, field_name: str, segment_count: int
    ) -> Tuple[int, int]: ...
    def _reset_after_fork(self) -> None: ...

class NativeIdGenerator:
    def __new__(
        cls,
        segment_client: NativeSegmentClient,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int = 10000,
        *,
        max_segment_count: Optional[int] = None,
        max_wait: float = 5.0,
    ) -> "NativeIdGenerator": ...
    def next_id(self) -> int: ...
    def try_next_id(self) -> Optional[int]: ...
    def next_ids(self, n: int) -> range: ...
    @property
    def buffered(self) -> int: ...
    @property
    def next_segment_count(self) -> int: ...
    @property
    def discarded_segments(self) -> int:
        """Segments this generator's requests discarded, never handing out
        their IDs: their store went backwards or is not the pinned one."""
    def _reset_after_fork(self) -> None: ...

def after_fork_in_child() -> None: ...
