"""``sct-bench``'s results file, written and read in one place: ``results.json`` (with ``.csv`` and ``.md`` beside
it) is written by `ResultsWriter` and read back by `load_results`, which checks the fields the writer puts there;
also the names of every results file and the JSON / YAML readers that name the file in their errors.

Each file is rewritten atomically after every row, so an error or Ctrl-C keeps what was measured and a reader never
sees half a file; `record_status` marks in the run's config how it ended.
"""
import csv
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import yaml

from ..utils import CLIError, atomic_write_text, one_line
from .markdown import Column, column_table, environment_line, run_notes, wall_time

__all__ = [
    'RESULTS_JSON', 'RESULTS_CSV', 'RESULTS_MD', 'OVERHEAD_JSON', 'OVERHEAD_MD', 'read_json', 'read_yaml_mapping',
    'record_status', 'ResultsWriter', 'with_gmacs', 'load_results',
]

RESULTS_JSON = 'results.json'
RESULTS_CSV = 'results.csv'
RESULTS_MD = 'results.md'
OVERHEAD_JSON = 'overhead.json'
OVERHEAD_MD = 'overhead.md'


def read_json(path: Path) -> Any:
    """A JSON file's content, or an error naming the file."""
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise CLIError(f'{path}: file not found') from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CLIError(f'{path}: not a readable JSON file ({one_line(e)})') from None


def read_yaml_mapping(path: Path) -> Dict[str, Any]:
    """A training run's ``args.yaml``: a mapping, or an error naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise CLIError(f'{path}: file not found') from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise CLIError(f'{path}: not a readable YAML file ({one_line(e)})') from None
    if not isinstance(data, dict):
        raise CLIError(f'{path}: expected a YAML mapping of training arguments, got {type(data).__name__}')
    return data


@contextmanager
def record_status(config: Dict[str, Any]) -> Iterator[None]:
    """Set ``config['status']`` to how the block ended: ``complete``, ``error: ...`` (a `CLIError`) or
    ``interrupted: <exception>``, so results written after a failure say they are partial."""
    try:
        yield
    except CLIError as e:
        config['status'] = f'error: {one_line(e, 1000)}'
        raise
    except BaseException as e:
        config['status'] = f'interrupted: {type(e).__name__}'
        raise
    config['status'] = 'complete'


# --- writing ---------------------------------------------------------------------------------------------------------

_SWEEP_COLUMNS: Tuple[Column, ...] = (
    ('model', 'Model', None),
    ('checkpoint', 'Checkpoint', None),
    ('resolution', 'Resolution (px)', None),
    ('train_scale', 'Training scale', None),
    ('top1', 'Top-1 (%)', 2),
    ('top5', 'Top-5 (%)', 2),
    ('num_samples', 'Images', None),
    ('latency_ms_p50', 'Latency p50 (ms)', 3),
    ('latency_ms_p90', 'Latency p90 (ms)', 3),
    ('throughput', 'Throughput (img/s)', 1),
    ('gmacs', 'GMACs', 3),
)


class ResultsWriter:
    """The files of one ``sct-bench`` run, rewritten after every row."""

    def __init__(self, output_dir: 'str | os.PathLike', environment: Dict[str, Any], config: Dict[str, Any]):
        self.output_dir = Path(output_dir)  # created by the first write
        self.environment = environment
        self.config = config
        self.rows: List[Dict[str, Any]] = []

    def add(self, row: Dict[str, Any]) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        doc = {'environment': self.environment, 'config': self.config, 'results': self.rows}
        atomic_write_text(self.output_dir / RESULTS_JSON, json.dumps(doc, indent=2) + '\n')
        atomic_write_text(self.output_dir / RESULTS_CSV, self.csv())
        atomic_write_text(self.output_dir / RESULTS_MD, self.markdown())

    def csv(self) -> str:
        """One line per row (lists space-joined), plus the environment as ``env_*`` columns on every line."""
        keys: List[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        env = {f'env_{k}': v for k, v in self.environment.items()}
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys + list(env), lineterminator='\n')
        writer.writeheader()
        for row in self.rows:
            flat = {k: ' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in row.items()}
            writer.writerow({**flat, **env})
        return buf.getvalue()

    def markdown(self) -> str:
        cfg = self.config
        lines = run_notes('sct-bench results', cfg)
        lines += [
            f"Data set `{cfg.get('dataset')}` (split `{cfg.get('split')}`). Preprocessing: timm's eval transform at "
            f"each test resolution r (resize the shorter side to r / crop_pct, center-crop r, the model's "
            f"interpolation and mean/std). Latency: batch 1, median and 90th percentile of "
            f"{cfg.get('latency_runs')} runs after {cfg.get('warmup')} warm-up runs; throughput at batch "
            f"{cfg.get('throughput_batch_size')}. GMACs: multiply-adds per image (timm's convention; the `gmacs` "
            f"field of results.json). Settings: "
            f"amp {cfg.get('amp_dtype') or 'off'}, channels_last {cfg.get('channels_last')}, "
            f"torch.compile {cfg.get('torchcompile') or 'off'}." + wall_time(cfg),
            '',
            environment_line(self.environment),
            '',
        ]
        untrained = sorted({r['model'] for r in self.rows if r.get('weights') == 'random init'})
        if untrained:
            lines += [
                f"Random-init weights ({', '.join(untrained)}): their accuracy is chance level and means nothing; "
                f'only their timing and GMACs are meaningful.', '']
        lines += [column_table(self.rows, _SWEEP_COLUMNS), '']
        return '\n'.join(lines)


# --- reading ---------------------------------------------------------------------------------------------------------

_RESULT_FIELDS = {
    'model': (str,), 'dataset': (str,), 'resolution': (int,), 'top1': (int, float),
}
_OPTIONAL_RESULT_FIELDS = {
    'checkpoint': (str,), 'top5': (int, float), 'num_samples': (int,), 'latency_ms_p50': (int, float),
    'latency_ms_p90': (int, float), 'throughput': (int, float), 'gmacs': (int, float),
}
_LEGACY_GMACS_KEY = 'gflops'  # what sct-bench called the multiply-add count before it was named for what it holds


def with_gmacs(rows: Sequence[Any]) -> List[Any]:
    """Rows with the multiply-add count under ``gmacs``, also for results files written before the rename."""
    out = []
    for row in rows:
        if isinstance(row, dict) and _LEGACY_GMACS_KEY in row:
            row = dict(row)
            legacy = row.pop(_LEGACY_GMACS_KEY)
            row.setdefault('gmacs', legacy)
        out.append(row)
    return out


def load_results(path: Union[str, Path], model: Optional[str] = None) -> Dict[str, Any]:
    """Read an ``sct-bench`` results file and keep the rows of one model.

    Args:
        path: Results JSON (``{"environment": ..., "config": ..., "results": [rows]}``).
        model: The rows' ``model`` value to keep; may be omitted when the file holds a single model.

    Returns:
        The same document with only the chosen rows, sorted by resolution (largest first), GMACs under ``gmacs``.
    """
    path = Path(path)
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get('results'), list):
        raise CLIError(f'{path}: not an sct-bench results file (no "results" list)')
    amp_dtype = (doc.get('config') or {}).get('amp_dtype')
    if amp_dtype:
        raise CLIError(f'{path}: measured under {amp_dtype} autocast; model cards report float32 evaluation: sweep '
                       f'again without --amp')
    all_rows = with_gmacs(doc['results'])
    for i, row in enumerate(all_rows):
        if not isinstance(row, dict):
            raise CLIError(f'{path}: results[{i}] is not an object')
        for key, types in _RESULT_FIELDS.items():
            value = row.get(key)
            if isinstance(value, bool) or not isinstance(value, types):
                raise CLIError(f'{path}: results[{i}] needs "{key}" ({types[0].__name__}), got {value!r}')
        for key, types in _OPTIONAL_RESULT_FIELDS.items():
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
                raise CLIError(f'{path}: results[{i}] "{key}" must be {types[0].__name__} or null, got {value!r}')
        if not 0.0 <= row['top1'] <= 100.0:
            raise CLIError(f'{path}: results[{i}] top1 {row["top1"]} is not a percentage')
    names = sorted({row['model'] for row in all_rows})
    if model is None:
        if len(names) != 1:
            raise CLIError(f'{path}: holds results for {names or "no model"}; choose one with --results-model')
        model = names[0]
    rows = [row for row in all_rows if row['model'] == model]
    if not rows:
        raise CLIError(f'{path}: no results for model {model!r} (it has {names})')
    datasets = sorted({row['dataset'] for row in rows})
    if len(datasets) > 1:
        raise CLIError(f'{path}: results for {model!r} span several data sets {datasets}; stage one per data set')
    resolutions = [row['resolution'] for row in rows]
    if len(set(resolutions)) != len(resolutions):
        raise CLIError(f'{path}: results for {model!r} repeat a resolution ({sorted(resolutions)})')
    out = {k: v for k, v in doc.items() if k != 'results'}
    out['results'] = sorted(rows, key=lambda r: -r['resolution'])
    return out
