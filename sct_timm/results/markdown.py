"""The one markdown table helper, and the lines every results page shares.

Every results page (``sct-bench``'s ``results.md``, ``sct-overhead``'s, int8's, the benchmark reports) and every
model card renders its tables here, so a cell is escaped and a missing value is shown the same way everywhere.
Two forms: `table` takes a header and rows of cells already formatted; `column_table` takes result rows (dicts)
and a `Column` spec per column (row key, heading, decimals).
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ['Column', 'escape', 'format_value', 'table', 'column_table', 'run_notes', 'environment_line', 'wall_time']

Column = Tuple[str, str, Optional[int]]
"""(row key, heading, decimals or None for as-is)."""


def escape(value: Any) -> str:
    """A cell's text: a ``|`` would end the cell and a newline the row."""
    return str(value).replace('|', '\\|').replace('\n', ' ')


def format_value(value: Any, digits: Optional[int] = 2) -> str:
    """Text for a value; ``digits=None`` keeps a float's shortest form (learning rates, decays); lists are joined."""
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        return f'{value:g}' if digits is None else f'{value:.{digits}f}'
    if isinstance(value, (list, tuple)):
        return ', '.join(format_value(v, digits) for v in value)
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table of a header row and rows of cells (any value; its ``str``, escaped)."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(escape(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def _column_text(value: Any, digits: Optional[int]) -> str:
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if digits is not None and isinstance(value, (int, float)):
        return f'{value:.{digits}f}'
    return str(value)


def column_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A markdown table of result rows, one column per `Column`: a missing key shows ``-``, numbers get the
    column's decimals."""
    return table([c[1] for c in columns], [[_column_text(row.get(k), d) for k, _, d in columns] for row in rows])


def run_notes(title: str, config: Dict[str, Any]) -> List[str]:
    """A results page's heading, and a warning when the run did not complete (its rows are all it measured)."""
    lines = [f'# {title}', '']
    status = config.get('status', 'complete')
    if status != 'complete':
        lines += [f'**Incomplete run** ({status}): only the rows below were measured.', '']
    return lines


def environment_line(environment: Dict[str, Any]) -> str:
    return 'Environment: ' + '; '.join(f'{k} {v}' for k, v in environment.items()) + '.'


def wall_time(config: Dict[str, Any]) -> str:
    return f" Wall time {config['wall_seconds']:.0f} s." if config.get('wall_seconds') is not None else ''
