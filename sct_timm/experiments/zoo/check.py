"""The main job (``--check``): every staged SCT tag re-measured through ``pretrained=True`` and set beside its card
and the dedicated models of its ``comparison.json``."""
import argparse
import json
from pathlib import Path
from typing import Dict, Sequence

from ...hub.files import staged_info
from ...results.markdown import table as markdown_table
from ...results.targets import by_size, per_size
from ..runs import run_logged
from .commands import check_command
from .plan import Row, staged_dir
from .report import plot

__all__ = ['check']


def check(rows: Sequence[Row], args: argparse.Namespace) -> int:
    """Sweep every staged SCT tag through ``pretrained=True`` and set it beside its card and dedicated models.

    Writes ``check.json`` / ``check.md`` and a plot per architecture into ``--check-output``. Returns 1 when a
    re-measured top-1 differs from its card by more than 0.1 points on the card's own test images, else 0.
    """
    out = Path(args.check_output)
    doc: Dict[str, dict] = {}
    lines = [f'# The zoo re-measured: `sct-bench --pretrained` on the staged tags ({args.device})', '',
             'Card: the staged `results.json`; dedicated: the plain models of the card\'s `comparison.json`.']
    failed = False
    for row in (r for r in rows if r.kind == 'sct'):
        info = staged_info(staged_dir(row, args))
        card = by_size(info['results'])
        card_images = {r.get('num_samples') for r in card.values()}
        samples = args.test_samples or (card_images.pop() if len(card_images) == 1 else row.spec.test_samples)
        run_logged(check_command(row, args, samples), out / row.arch / 'sweep.log', cwd=args.root)
        measured = by_size(json.loads((out / row.arch / 'results.json').read_text())['results'])
        runs = (info['comparison'] or {}).get('dedicated', [])
        dedicated = {run['label'][len(row.arch) + 1:]: by_size(run['results']) for run in runs}  # kind: rows
        comparable = all(card.get(s, {}).get('num_samples') == samples for s in measured)
        compared = per_size(measured, dedicated)
        entry = {'tag': info['name'], 'test_images': samples, 'comparable_with_card': comparable, 'sizes': {}}
        body = []
        for size, m in sorted(measured.items()):
            diff = m['top1'] - card[size]['top1'] if comparable and size in card else None
            failed |= diff is not None and abs(diff) > 0.1 + 1e-9
            c = compared[size]
            entry['sizes'][str(size)] = {
                'top1': m['top1'], 'top5': m.get('top5'), 'card_top1': card.get(size, {}).get('top1'),
                'difference': diff, **{k: c.get(k) for k in ('best_dedicated', 'dedicated_top1', 'delta_top1')}}
            body.append([size, f"{m['top1']:.2f}", f"{card[size]['top1']:.2f}" if size in card else '-',
                         '-' if diff is None else f'{diff:+.2f}',
                         *((f"{c['dedicated_top1']:.2f} ({c['best_dedicated']})", f"{c['delta_top1']:+.2f}")
                           if 'delta_top1' in c else ('-', '-'))])
        lines += ['', f"## {info['name']} ({samples:,} test images"
                  f"{'' if comparable else '; the card used other images, so no difference is checked'})", '',
                  markdown_table(['px', 're-measured top-1', 'card top-1', 'difference', 'best dedicated',
                                  'SCT - best dedicated'], body)]
        doc[row.arch] = entry
        plot(row.gen, row.arch, {'sct': measured, **dedicated}, out / f'accuracy_vs_resolution_{row.arch}.png')
    lines += ['', 'Every re-measured top-1 within 0.1 points of its card: '
              + ('**no**' if failed else 'yes') + '.']
    (out / 'check.json').write_text(json.dumps(doc, indent=2) + '\n')
    (out / 'check.md').write_text('\n'.join(lines) + '\n')
    print((out / 'check.md').read_text())
    return 1 if failed else 0
