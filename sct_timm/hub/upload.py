"""``sct-hub publish``: upload exactly a staged folder's files to its Hub repo, in one commit.

huggingface_hub's ``upload_folder`` does the work; ``allow_patterns`` names each staged file, so nothing else that
happens to sit in the folder (hidden files, editor backups in sub-folders) is ever sent.
"""
import logging
import re
from pathlib import Path
from typing import List, Optional, Union

from huggingface_hub import HfApi, get_token
from huggingface_hub import constants as hf_constants

from ..results.files import RESULTS_JSON
from ..utils import CLIError, one_line
from ..version import __version__
from .files import staged_files, staged_repo_id, validate_repo_id
from .load import verify

__all__ = ['publish']

_logger = logging.getLogger(__name__)


def _exact_pattern(name: str) -> str:
    """An fnmatch pattern that matches only ``name`` (its ``*``, ``?`` and ``[`` taken literally)."""
    return re.sub(r'([*?\[])', r'[\1]', name)


def publish(
        folder: Union[str, Path],
        repo_id: Optional[str] = None,
        dry_run: bool = False,
        private: bool = False,
        commit_message: Optional[str] = None,
        token: Optional[str] = None,
) -> List[str]:
    """Upload a staged folder's files to the Hub in one commit (creating the repo if needed).

    The token comes from ``token``, else huggingface_hub's ``get_token()`` (``HF_TOKEN`` or ``hf auth login``).
    The folder is verified before anything is sent. With ``dry_run`` nothing is sent and no token is needed.

    Returns:
        The file names uploaded (or that would be), exactly the commit's files.
    """
    folder = Path(folder)
    files = staged_files(folder)
    repo_id = validate_repo_id(repo_id) if repo_id else staged_repo_id(folder)
    if not dry_run:
        if hf_constants.HF_HUB_OFFLINE:
            raise CLIError('HF_HUB_OFFLINE is set: unset it to publish')
        token = token or get_token()
        if not token:
            raise CLIError('no Hugging Face token: set HF_TOKEN or run `hf auth login`')
    verify(folder)
    if RESULTS_JSON not in files:
        _logger.warning(f'{folder} has no {RESULTS_JSON}: its model card shows no measured accuracy')
    if dry_run:
        _logger.info(f'Dry run: would upload {len(files)} files from {folder} to {repo_id}')
        return files
    api = HfApi(token=token, library_name='sct-timm', library_version=__version__)
    try:
        api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            allow_patterns=[_exact_pattern(n) for n in files],
            commit_message=commit_message or f'Upload {folder.name} with sct-hub',
        )
    except Exception as e:
        raise CLIError(f'upload of {folder} to {repo_id} failed: {one_line(e)}') from None
    _logger.info(f'Published {len(files)} files from {folder} to https://huggingface.co/{repo_id}')
    return files
