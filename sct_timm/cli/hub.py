"""``sct-hub`` (also ``python -m sct_timm.hub``): the command line over `sct_timm.hub` (stage, verify, mirror,
publish, cards, cfg).

Only argument parsing and dispatch live here; every sub-command is one library call. Bad input is a `CLIError`:
one ``sct-hub: error: ...`` line on stderr and exit status 2, like argparse's own usage errors.
"""
import argparse
import logging
from pathlib import Path
from typing import List, Optional, Sequence

from huggingface_hub import constants as hf_constants
from tqdm.auto import tqdm

from ..hub.cards import write_model_cards
from ..hub.files import HUB_ORG, STORAGE_DTYPES, find_staged
from ..hub.hf_cache import mirror
from ..hub.load import verify
from ..hub.registry import cfg_lines
from ..hub.staging import stage
from ..hub.upload import publish
from ..utils import CLIError, ListAction, run_command

__all__ = ['PROG', 'build_parser', 'main']

PROG = 'sct-hub'

_logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Stage, verify, mirror and publish SCT weights as timm Hugging Face Hub repos.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    p = sub.add_parser('stage', help='write a Hub repo folder from a training checkpoint')
    p.add_argument('checkpoint', help='timm training checkpoint (.pth.tar/.pth) or .safetensors state dict')
    p.add_argument('--tag', required=True, help='pretrained tag; the repo is <org>/<arch>.<tag>')
    p.add_argument('--model', dest='model_name', help="SCT architecture (default: the checkpoint's arch)")
    p.add_argument('--scales', action=ListAction, help="training scales, e.g. 64 32, 64,32 or a preset (default: the "
                   "checkpoint's args)")
    p.add_argument('--dataset', help="training data set (default: the checkpoint's args, else the results rows)")
    p.add_argument('--results', help='sct-bench results JSON for the accuracy table')
    p.add_argument('--results-model', help='which "model" rows of --results describe these weights')
    p.add_argument('--train-args', help="the run's args.yaml (default: the checkpoint's args)")
    p.add_argument('--comparison', help='comparison.json of these weights beside dedicated plain models (written by '
                   'benchmarks/zoo.py), shown in the card')
    p.add_argument('--plot', help='PNG of accuracy vs resolution, shown in the card')
    p.add_argument('--cascade', help='sct-bench --cascade cascade.json of these weights: its fitted thresholds are '
                   'recorded in config.json (pretrained=True users get the cascade) and shown in the card')
    p.add_argument('--use-ema', action='store_true',
                   help="stage the checkpoint's EMA weights (an error if it has none)")
    p.add_argument('--dtype', default='float32', choices=sorted(STORAGE_DTYPES), help='weight storage precision')
    p.add_argument('--org', default=HUB_ORG, help=f'Hub namespace (default {HUB_ORG})')
    p.add_argument('--hub-dir', default='hub', help='parent of staged folders (default hub)')
    p.add_argument('--output', help='folder to write (default <hub-dir>/<arch>.<tag>)')
    p.add_argument('--img-size', type=int, help='default input size of the data config')
    p.add_argument('--mean', action=ListAction, type=float, help='normalisation mean, space- or comma-separated')
    p.add_argument('--std', action=ListAction, type=float, help='normalisation std, space- or comma-separated')
    p.add_argument('--crop-pct', type=float, help='eval crop fraction')
    p.add_argument('--interpolation', help='eval resize interpolation')
    p.add_argument('--force', action='store_true', help='replace an existing folder')

    p = sub.add_parser('verify', help='check staged folders load through timm and their scales match')
    p.add_argument('folders', nargs='*', help='staged folders (default: all in --hub-dir)')
    p.add_argument('--hub-dir', default='hub')

    p = sub.add_parser('mirror', help='place staged folders in a Hugging Face cache for offline pretrained=True')
    p.add_argument('folders', nargs='*', help='staged folders (default: all in --hub-dir)')
    p.add_argument('--hub-dir', default='hub')
    p.add_argument('--cache-dir', help=f'Hub cache (default {hf_constants.HF_HUB_CACHE})')
    p.add_argument('--repo-id', help='file a single folder under this <org>/<name>')

    p = sub.add_parser('publish', help='upload a staged folder to the Hugging Face Hub')
    p.add_argument('folder')
    p.add_argument('--repo-id', help='<org>/<name> (default: the repo it was staged for)')
    p.add_argument('--dry-run', action='store_true', help='list the files that would be uploaded, upload nothing')
    p.add_argument('--private', action='store_true', help='create the repo private')
    p.add_argument('--commit-message')

    p = sub.add_parser('cards', help='regenerate MODEL_CARDS.md from the staged folders')
    p.add_argument('--hub-dir', default='hub')
    p.add_argument('--output', default='MODEL_CARDS.md')

    p = sub.add_parser('cfg', help="print the default_cfgs and TAG_SCALES entries that make a folder's tag")
    p.add_argument('folder')
    return parser


def _folders(args: argparse.Namespace) -> List[Path]:
    folders = [Path(f) for f in args.folders] if args.folders else find_staged(args.hub_dir)
    if not folders:
        raise CLIError(f'{args.hub_dir}: holds no staged folder')
    return folders


def run(args: argparse.Namespace) -> None:
    """Carry out one parsed ``sct-hub`` command."""
    if args.command == 'stage':
        opts = {k: v for k, v in vars(args).items() if k not in ('command', 'checkpoint', 'tag')}
        stage(args.checkpoint, args.tag, **opts)
    elif args.command == 'verify':
        folders = _folders(args)
        for folder in tqdm(folders, desc='verify', disable=len(folders) < 2):
            info = verify(folder)
            _logger.info(f"OK {folder}: {info['architecture']}.{info['tag']}, scales {info['scales']}, "
                         f"{info['num_classes']} classes, weights {'/'.join(info['dtypes'])}")
    elif args.command == 'mirror':
        folders = _folders(args)
        if args.repo_id and len(folders) != 1:
            raise CLIError('--repo-id names one repo: give exactly one folder')
        for folder in tqdm(folders, desc='mirror', disable=len(folders) < 2):
            mirror(folder, cache_dir=args.cache_dir, repo_id=args.repo_id)
    elif args.command == 'publish':
        files = publish(args.folder, repo_id=args.repo_id, dry_run=args.dry_run, private=args.private,
                        commit_message=args.commit_message)
        if args.dry_run:
            print('\n'.join(files))
    elif args.command == 'cards':
        write_model_cards(args.hub_dir, args.output)
    elif args.command == 'cfg':
        print(cfg_lines(args.folder), end='')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``sct-hub`` entry point, callable in-process with ``argv``; returns the exit status (2: bad input)."""
    return run_command(PROG, build_parser().parse_args, run, argv)


if __name__ == '__main__':
    raise SystemExit(main())
