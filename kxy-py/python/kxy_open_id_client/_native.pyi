"""Type stubs of the native module (Rust, pyo3)."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from typing_extensions import disjoint_base, final

__all__ = ["__version__", "NativeSegmentClient", "NativeIdGenerator", "Pending", "after_fork_in_child"]
__version__: str

@final
class Pending:
    """A request running on kxy's runtime; ``cancel()`` stops it."""

    def cancel(self) -> None: ...

@final
class NativeSegmentClient:
    def __new__(
        cls,
        base_url: Union[str, Sequence[str]],
        timeout: Optional[float] = ...,  # 30.0
        verify_ssl: bool = True,
        headers: Optional[Dict[str, str]] = None,
        *,
        api_key: Optional[str] = None,
        connect_timeout: float = 1.0,
        previous: Optional["NativeSegmentClient"] = None,
        ca_pem: Optional[bytes] = None,
        ca_der: Optional[List[bytes]] = None,
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
    def _allocate_async(
        self,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int,
        done: Callable[[bool, Any], None],
    ) -> Pending: ...
    def _reset_after_fork(self) -> None: ...

@disjoint_base
class NativeIdGenerator:
    def __new__(cls, *args: Any, **kwargs: Any) -> "NativeIdGenerator": ...
    def _configure(
        self,
        client: NativeSegmentClient,
        system_code: str,
        db_name: str,
        table_name: str,
        field_name: str,
        segment_count: int,
        adaptive: bool,
        max_segment_count: Optional[int],
        max_wait: Optional[float],
    ) -> None: ...
    @property
    def _configured(self) -> bool: ...
    @property
    def _python_path(self) -> bool: ...
    def _set_python_path(self, on: bool) -> None: ...
    def _use_client(self, client: NativeSegmentClient) -> None: ...
    def _resize(
        self,
        segment_count: int,
        adaptive: bool,
        max_segment_count: Optional[int],
        max_wait: Optional[float],
    ) -> None: ...
    def next_id(self) -> int: ...
    def try_next_id(self) -> Optional[int]: ...
    def next_ids(self, n: int) -> range: ...
    def _next_id_async(self, done: Callable[[bool, Any], None]) -> Union[int, Pending]: ...
    def _next_ids_async(self, n: int, done: Callable[[bool, Any], None]) -> Pending: ...
    @property
    def buffered(self) -> int: ...
    @property
    def next_segment_count(self) -> Optional[int]: ...
    @property
    def discarded_segments(self) -> int:
        """Segments this generator's requests discarded, never handing out
        their IDs: their store went backwards or is not the pinned one."""
    def _reset_after_fork(self) -> None: ...

def after_fork_in_child() -> None: ...
