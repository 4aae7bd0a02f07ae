"""The zoo's report from its finished sweeps: ``zoo.json`` / ``zoo.md`` (SCT against the best dedicated model at every
size, and the targets as margins by `sct_timm.results.targets`) and one accuracy-vs-resolution plot per architecture.
"""
import argparse
import json
from pathlib import Path
from typing import Dict

from ...results.markdown import table as markdown_table
from ...results.targets import margins_text, per_size, target_margins
from .plan import (
    CALIBRATE_BATCH, HOLDOUT, HOLDOUT_WEIGHTS, SEED, TEST_IMAGES, Generation, Row, holdout_swept, swept,
)
from .records import train_cpu, train_wall_seconds, trained_budget

__all__ = ['collect', 'compare', 'targets', 'calibration_evidence', 'report', 'plot']

Table = Dict[str, Dict[int, Dict[str, float]]]  # kind -> size -> top1 / top5 / images


def collect(args: argparse.Namespace) -> Dict[str, Table]:
    """``{arch: {kind: {size: {'top1', 'top5', 'images'}}}}`` of every finished sweep under ``--results``."""
    table: Dict[str, Table] = {}
    gen = args.gen
    for arch in gen.archs:
        for kind in gen.kinds:
            rows = swept(Row(gen, arch, kind), args)
            if rows is not None:
                table.setdefault(arch, {})[kind] = {
                    int(r['resolution']): {'top1': float(r['top1']), 'top5': float(r['top5']),
                                           'images': int(r.get('num_samples') or TEST_IMAGES)} for r in rows}
    return table


def compare(rows: Table) -> Dict[int, dict]:
    """Per test size: SCT's top-1/top-5, the best dedicated model there (top-1) and SCT minus it."""
    return per_size(rows.get('sct', {}), {k: v for k, v in rows.items() if k != 'sct'})


def targets(gen: Generation, arch: str, rows: Table) -> Dict[str, Dict[str, float]]:
    """The issue's targets for one architecture's SCT model as margins (>= 0: met), by `target_margins`."""
    top1 = {kind: {r: v['top1'] for r, v in res.items()} for kind, res in rows.items()}
    dedicated = {kind: (Row(gen, '', kind).scales[0], res) for kind, res in top1.items() if kind != 'sct'}
    return target_margins(top1.get('sct', {}), dedicated, gen.scales, spec=gen.target_spec(arch))


def calibration_evidence(row: Row, args: argparse.Namespace) -> Dict[str, Dict[int, float]]:
    """A calibrated SCT row's top-1 per size on train_holdout, of its trained and its calibrated weights ({} when
    either sweep is missing)."""
    rows = {which: holdout_swept(row, args, which) for which in HOLDOUT_WEIGHTS}
    if not row.calibrated or any(v is None for v in rows.values()):
        return {}
    return {which: {int(r['resolution']): float(r['top1']) for r in v} for which, v in rows.items()}


def _calibration_lines(row: Row, evidence: Dict[str, Dict[int, float]]) -> list:
    sizes = sorted(evidence['trained'])
    diff = {s: evidence['calibrated'][s] - evidence['trained'][s] for s in sizes if s in evidence['calibrated']}
    body = [[which, *(f'{evidence[which][s]:.2f}' for s in sizes)] for which in HOLDOUT_WEIGHTS]
    body.append(['calibrated - trained', *(f'{diff[s]:+.2f}' if s in diff else '' for s in sizes)])
    mean = sum(diff.values()) / len(diff)
    return ['', f'SCT statistics re-estimated after training (`sct-calibrate`, {row.gen.calibrate_batches} batches '
                f'of {CALIBRATE_BATCH} train_fit images, the run\'s size jitter); top-1 of both on {HOLDOUT[1]:,} {HOLDOUT[0]} '
                f'images (mean difference {mean:+.2f}; the test columns above are the calibrated weights\'):', '',
            markdown_table(['SCT weights', *(f'{s} px' for s in sizes)], body)]


def _accuracy_text(gen: Generation) -> str:
    asked = {arch: spec.accuracy_target for arch, spec in gen.archs.items() if spec.accuracy_target is not None}
    if not asked:
        return ''
    return (f' accuracy = the dedicated model at {max(gen.scales)} px - its least top-1 ('
            + ', '.join(f'{arch} {target:g}' for arch, target in asked.items()) + ').')


def _cells(comparison: Dict[int, dict], sizes, text) -> list:
    return [text(comparison[r]) if 'delta_top1' in comparison.get(r, {}) else '' for r in sizes]


def report(args: argparse.Namespace) -> None:
    """zoo.json / zoo.md and one accuracy-vs-resolution plot per architecture from the finished sweeps."""
    table = collect(args)
    gen = args.gen
    if not table:
        raise SystemExit(f'zoo: no finished sweeps under {args.results}')
    out = Path(args.results)
    images = sorted({v['images'] for rows in table.values() for res in rows.values() for v in res.values()})
    doc = {'device': args.device, 'seed': SEED, 'test_images': images[0] if len(images) == 1 else images,
           'archs': {}}
    lines = [f'# Model zoo: SCT vs dedicated plain timm models on Fashion-MNIST ({args.device}; top-1 / top-5 on '
             f"{' or '.join(f'{n:,}' for n in images)} test images)", '',
             f'Each architecture: the SCT model ({gen.recipe}) and '
             'plain timm models trained at one size each, same recipe and budget; `best dedicated` is the most '
             'accurate plain model at that test size. ' + margins_text(gen.scales, gen.test_sizes, gen.targets) +
             _accuracy_text(gen) + ' The size that decides each margin in brackets.']
    for arch, rows in table.items():
        samples, epochs = trained_budget(Row(gen, arch, 'sct' if 'sct' in rows else next(iter(rows))), args)
        sizes = sorted({r for v in rows.values() for r in v})
        comparison = compare(rows)
        entry = {'budget': {'train_samples': samples, 'epochs': epochs}, 'rows': {},
                 'comparison': {str(r): v for r, v in comparison.items()}, 'targets': targets(gen, arch, rows)}
        for kind, res in rows.items():
            row = Row(gen, arch, kind)
            row_samples, row_epochs = trained_budget(row, args)
            entry['rows'][kind] = {
                'model': row.model, 'config': row.config, 'flags': row.flags, 'scales': list(row.scales),
                'train_samples': row_samples, 'epochs': row_epochs,
                'top1': {str(r): v['top1'] for r, v in res.items()},
                'top5': {str(r): v['top5'] for r, v in res.items()},
                'train_wall_seconds': train_wall_seconds(row, args),
                'train_cpu': train_cpu(row, args)}
        doc['archs'][arch] = entry
        body = [[f'{Row(gen, arch, kind).model} ({kind})',
                 *(f"{res[r]['top1']:.2f} / {res[r]['top5']:.2f}" if r in res else '' for r in sizes)]
                for kind, res in rows.items()]
        if any('delta_top1' in v for v in comparison.values()):
            body.append(['best dedicated (top-1)',
                         *_cells(comparison, sizes, lambda c: f"{c['dedicated_top1']:.2f} ({c['best_dedicated']})")])
            body.append(['SCT - best dedicated', *_cells(comparison, sizes, lambda c: f"{c['delta_top1']:+.2f}")])
        lines += ['', f"## {arch} ({samples:,} images x {epochs} epoch{'s' * (epochs != 1)} per model)", '',
                  markdown_table(['model', *(f'{r} px' for r in sizes)], body)]
        if entry['targets']:
            lines += ['', 'Targets: ' + ', '.join(f"{k} {v['margin']:+.2f} ({v['size']} px)"
                                                  for k, v in entry['targets'].items())]
        evidence = calibration_evidence(Row(gen, arch, 'sct'), args)
        if evidence:
            entry['calibration_holdout'] = {w: {str(s): v for s, v in t.items()} for w, t in evidence.items()}
            lines += _calibration_lines(Row(gen, arch, 'sct'), evidence)
        plot(gen, arch, rows, out / f'accuracy_vs_resolution_{arch}.png')
    (out / 'zoo.json').write_text(json.dumps(doc, indent=2) + '\n')
    (out / 'zoo.md').write_text('\n'.join(lines) + '\n')
    print((out / 'zoo.md').read_text())


def plot(gen: Generation, arch: str, rows: Dict[str, Dict[int, Dict[str, float]]], path: Path) -> None:
    """Top-1 against test resolution: the SCT model bold, the dedicated models dotted greys (darker for larger
    training sizes), each model's training scales circled."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    lo, hi = min(gen.scales), max(gen.scales)
    for kind, res in rows.items():
        sizes = sorted(res)
        row = Row(gen, arch, kind)
        if kind == 'sct':
            style = dict(marker='o', linewidth=2.0, color='C0')
        else:
            shade = 0.2 + 0.5 * (hi - row.scales[0]) / max(1, hi - lo)
            style = dict(linestyle=':', marker='.', linewidth=1.3, color=str(shade))
        ax.plot(sizes, [res[r]['top1'] for r in sizes], label=f'{row.model} ({kind})', **style)
        trained = [r for r in sizes if r in row.scales]
        ax.scatter(trained, [res[r]['top1'] for r in trained], s=90, facecolors='none',
                   edgecolors=style['color'], zorder=3)
    ax.set_xlabel('test resolution (px); circles: training scales')
    ax.set_ylabel('top-1 (%)')
    ax.set_title(f'{arch} on Fashion-MNIST: SCT vs dedicated plain models')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
