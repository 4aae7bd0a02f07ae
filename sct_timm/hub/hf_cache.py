"""``sct-hub mirror``: a staged folder placed in a Hugging Face cache, so ``pretrained=True`` loads it offline.

This writes the cache layout huggingface_hub itself reads (``models--org--name/blobs``, ``snapshots``, ``refs``), so
timm's ordinary Hub path (``hf_hub_download`` in offline mode) finds the weights as if they had been downloaded. It
is how tests and machines without network use tags whose weights are staged but not (yet) published.
"""
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Optional, Union

from huggingface_hub import constants as hf_constants
from huggingface_hub.file_download import repo_folder_name

from ..utils import atomic_write_bytes, atomic_write_text
from .files import staged_files, staged_repo_id, validate_repo_id
from .load import verify

__all__ = ['mirror']

_logger = logging.getLogger(__name__)

# files the Hub stores with git LFS (their cache blob is named by sha256); other files by their git blob sha1
_LFS_SUFFIXES = ('.safetensors', '.bin', '.pth', '.pt', '.ckpt', '.onnx', '.h5', '.msgpack', '.npz', '.gz')
_LFS_MIN_SIZE = 10 * 1024 * 1024


def _file_digest(path: Path, digest: Any) -> str:
    """``digest`` (a hashlib object, possibly primed with a header) updated with the file, as hex."""
    with path.open('rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _etag(path: Path) -> str:
    """What the Hub reports as the file's etag, and the cache names its blob by: sha256 for LFS, else git sha1."""
    size = path.stat().st_size
    if path.name.lower().endswith(_LFS_SUFFIXES) or size >= _LFS_MIN_SIZE:
        return _file_digest(path, hashlib.sha256())
    return _file_digest(path, hashlib.sha1(f'blob {size}\0'.encode()))


def mirror(
        folder: Union[str, Path],
        cache_dir: Optional[Union[str, Path]] = None,
        repo_id: Optional[str] = None,
) -> Path:
    """Place a staged folder in a Hugging Face cache so ``pretrained=True`` loads it offline.

    Writes the layout ``hf_hub_download`` reads: ``models--org--name/blobs/<etag>`` (content), ``snapshots/<commit>/
    <file>`` (relative symlinks to the blobs, copies where symlinks are unavailable) and ``refs/main`` (the commit).
    The commit hash is derived from the files' etags, so mirroring the same files twice changes nothing and new
    files get a new snapshot that ``refs/main`` then names. The folder is verified first: a bad folder never
    reaches the cache.

    Args:
        folder: Staged folder.
        cache_dir: Hub cache; default huggingface_hub's ``HF_HUB_CACHE``.
        repo_id: Repo to file it under; default the one it was staged for.

    Returns:
        The snapshot folder.
    """
    folder = Path(folder)
    files = staged_files(folder)
    repo_id = validate_repo_id(repo_id) if repo_id else staged_repo_id(folder)
    verify(folder)
    cache_dir = Path(cache_dir if cache_dir is not None else hf_constants.HF_HUB_CACHE)
    storage = cache_dir / repo_folder_name(repo_id=repo_id, repo_type='model')
    etags = {name: _etag(folder / name) for name in files}
    commit = hashlib.sha1(''.join(f'{n} {e}\n' for n, e in sorted(etags.items())).encode()).hexdigest()

    blobs = storage / 'blobs'
    snapshot = storage / 'snapshots' / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, etag in etags.items():
        blob = blobs / etag
        if not blob.is_file():
            atomic_write_bytes(blob, (folder / name).read_bytes())  # a reader never sees half a blob
        pointer = snapshot / name
        if pointer.is_symlink() or pointer.exists():
            pointer.unlink()
        try:
            pointer.symlink_to(os.path.relpath(blob, snapshot))
        except OSError:
            shutil.copyfile(blob, pointer)
    atomic_write_text(storage / 'refs' / 'main', commit)  # no newline: huggingface_hub reads the file as the hash
    _logger.info(f'Mirrored {folder} as {repo_id}@{commit[:8]} in {cache_dir}')
    return snapshot
