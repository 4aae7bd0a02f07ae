"""What DDP ranks must agree on: the primary's decisions (one clock for all), and equal weights after training (a
digest of each rank's weights, compared)."""
import argparse
import hashlib
import json
import logging
from pathlib import Path
from typing import List, Optional

import torch
import torch.distributed as dist
from timm import utils

from ..utils import atomic_write_text

__all__ = ['primary_decides', 'weights_digest', 'check_ranks_agree']

_logger = logging.getLogger('sct_train')


def primary_decides(decision: bool, args: argparse.Namespace, device: torch.device) -> bool:
    """The primary rank's ``decision`` on every rank: one taken from a rank's own clock would differ between ranks,
    and a rank leaving the loop alone would hang the others."""
    if not args.distributed:
        return decision
    flag = torch.tensor([float(decision)], device=device)
    dist.broadcast(flag, 0)
    return bool(flag.item())


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in state-dict order: equal digests mean bitwise equal weights."""
    digest = hashlib.sha256()
    for name, tensor in utils.unwrap_model(model).state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_ranks_agree(model: torch.nn.Module, output_dir: Optional[str], args: argparse.Namespace) -> bool:
    """Gather each rank's weight digest; the primary writes them to ``rank_weights.json`` and logs the verdict."""
    digests: List[Optional[str]] = [None] * args.world_size
    dist.all_gather_object(digests, weights_digest(model))
    agree = len(set(digests)) == 1
    if utils.is_primary(args):
        atomic_write_text(Path(output_dir) / 'rank_weights.json', json.dumps(
            {'world_size': args.world_size, 'identical': agree, 'sha256': digests}, indent=2))
        if agree:
            _logger.info(f'weights after training are identical on all {args.world_size} ranks')
        else:
            _logger.error(f'weights after training differ between the {args.world_size} ranks (see rank_weights.json)')
    return agree
