"""Atomic file writes: a reader (or a crash) never sees half a file, and the old file survives a failed write."""
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

__all__ = ['atomic_write_bytes', 'atomic_write_text', 'atomic_path']


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path`` (parents are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Union[str, Path], text: str) -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode('utf-8'))


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """A temporary path beside ``path`` for writers that need a file name (exporters); renamed over ``path`` when
    the block ends without an exception, removed otherwise.

    The temporary name keeps ``path``'s suffixes, since some writers pick the format from them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.tmp-{uuid.uuid4().hex[:8]}-{path.name}')
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
