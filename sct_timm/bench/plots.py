"""The sweep's two plots: accuracy vs test resolution (the SCT paper's Figure 1 view) and accuracy vs batch-1
latency with the Pareto front over all models (which model and resolution to deploy for a latency budget)."""
import logging
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

__all__ = ['PLOT_RESOLUTION', 'PLOT_LATENCY', 'pareto_front', 'plot_results']

_logger = logging.getLogger(__name__)

PLOT_RESOLUTION = 'accuracy_vs_resolution.png'
PLOT_LATENCY = 'accuracy_vs_latency.png'


def pareto_front(points: Iterable[Tuple[float, float]]) -> List[Tuple[float, float]]:
    """Points no other point beats on both lower latency and higher accuracy, by increasing latency."""
    front: List[Tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


_MARKERS = ('o', 's', '^', 'D', 'v', 'P', 'X')
_DASHES = ('-', '--', '-.', ':')


def _line_style(i: int, n: int) -> Dict[str, Any]:
    return {
        'marker': _MARKERS[i % len(_MARKERS)], 'linestyle': _DASHES[i % len(_DASHES)],
        'linewidth': 1.2 + 1.5 * (n - 1 - i) / max(n - 1, 1), 'markersize': 5 + 3 * (n - 1 - i) / max(n - 1, 1),
    }


def plot_results(
        rows: Sequence[Dict[str, Any]],
        output_dir: 'str | os.PathLike',
        environment: Dict[str, Any],
        dataset: str,
) -> List[Path]:
    """Accuracy vs test resolution (the paper's Figure 1 view) and accuracy vs batch-1 latency (the Pareto view).

    Uses matplotlib's object API with the Agg canvas, so no global backend or pyplot state is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    output_dir = Path(output_dir)
    by_model: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row['model'], []).append(row)
    for model_rows in by_model.values():
        model_rows.sort(key=lambda r: r['resolution'])
    counts = sorted({r['num_samples'] for r in rows})
    images = f"{', '.join(map(str, counts))} images"
    untrained = [label for label, model_rows in by_model.items() if model_rows[0].get('weights') == 'random init']
    note = ''
    if untrained:
        who = 'all models' if len(untrained) == len(by_model) else ', '.join(untrained)
        note = f'\nrandom-init weights ({who}): accuracy is meaningless, only timing is'
    written = []

    fig = Figure(figsize=(7.5, 5), layout='constrained')
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, model_rows) in enumerate(by_model.items()):
        color = f'C{i % 10}'
        # marker and dash cycle, and thinner lines later: models with equal accuracy stay visible on top
        ax.plot(
            [r['resolution'] for r in model_rows], [r['top1'] for r in model_rows], color=color, label=label,
            **_line_style(i, len(by_model)))
        scales = model_rows[0].get('scales')
        if scales:
            trained = [r for r in model_rows if r['resolution'] in scales]
            ax.scatter(
                [r['resolution'] for r in trained], [r['top1'] for r in trained], s=160, facecolors='none',
                edgecolors=color, linewidths=1.5, zorder=3, label=f'{label}: training scales {tuple(scales)}')
    ax.set_xticks(sorted({r['resolution'] for r in rows}))
    ax.set_xlabel('Test resolution (px, square side)')
    ax.set_ylabel('Top-1 accuracy (%)')
    ax.set_title(f'Top-1 accuracy vs test resolution: {dataset} ({images}){note}', fontsize='medium')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='best', fontsize='small')
    path = output_dir / PLOT_RESOLUTION
    fig.savefig(path, dpi=120)
    written.append(path)

    timed = [r for r in rows if r.get('latency_ms_p50') is not None]
    if not timed:
        _logger.warning('no latency measured: skipping the accuracy-vs-latency plot')
        return written
    fig = Figure(figsize=(7.5, 5), layout='constrained')
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, model_rows) in enumerate(by_model.items()):
        model_rows = [r for r in model_rows if r.get('latency_ms_p50') is not None]
        xs = [r['latency_ms_p50'] for r in model_rows]
        ys = [r['top1'] for r in model_rows]
        ax.plot(xs, ys, color=f'C{i % 10}', label=label, **_line_style(i, len(by_model)))
        for r, x, y in zip(model_rows, xs, ys):
            # models alternate above / below their points, so labels of coinciding points stay apart
            ax.annotate(
                f"{r['resolution']}", (x, y), textcoords='offset points', xytext=(4, 4 if i % 2 == 0 else -11),
                fontsize=8, color=f'C{i % 10}')
    front = pareto_front((r['latency_ms_p50'], r['top1']) for r in timed)
    ax.step(
        [p[0] for p in front], [p[1] for p in front], where='post', color='0.5', linestyle='--', linewidth=2.5,
        alpha=0.5, zorder=1, label='Pareto front (all models)')
    ax.set_xlabel('Latency, batch 1, median (ms)')
    ax.set_ylabel('Top-1 accuracy (%)')
    ax.set_title(
        f"Top-1 accuracy vs latency: {dataset}, {environment['device']}, {environment['threads']} threads\n"
        f'(points labelled with the test resolution in px){note}', fontsize='medium')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='best', fontsize='small')
    path = output_dir / PLOT_LATENCY
    fig.savefig(path, dpi=120)
    written.append(path)
    return written
