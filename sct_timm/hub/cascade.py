"""A staged folder's resolution cascade: the thresholds ``sct-bench --cascade`` fitted on held-out training images,
recorded so ``pretrained=True`` users get a ready cascade, and shown on the card.

The fitted config goes into ``config.json``'s ``model_args`` (``cascade``), which timm passes back to the entrypoint
on ``hf-hub:`` / ``local-dir:`` loads (the model then carries it as ``model.sct_cascade``, and
``sct_timm.cascade.Cascade.from_model(model)`` builds it); for a registry tag the same dict is its ``TAG_CASCADES``
entry (``sct-hub cfg`` prints it). The measurement behind it is copied as ``cascade.json``.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..cascade import cascade_config
from ..results.files import read_json
from ..utils import CLIError, one_line

__all__ = ['cascade_entry', 'cascade_lines']


def cascade_entry(path: Union[str, Path], label: Optional[str] = None) -> Dict[str, Any]:
    """The entry of ``label`` (or the only one) in an ``sct-bench --cascade`` ``cascade.json``, its fitted config
    checked; a `CLIError` names what is wrong."""
    path = Path(path)
    doc = read_json(path)
    models = doc.get('models') if isinstance(doc, dict) else None
    if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
        raise CLIError(f'{path}: not an sct-bench --cascade file (no "models" entries)')
    chosen = [m for m in models if label is None or m.get('label') == label]
    if len(chosen) != 1:
        labels = [m.get('label') for m in models]
        raise CLIError(f'{path}: {"no" if not chosen else "several"} cascade entries for '
                       f'{label or "these weights"} (it has {labels}); pass --results-model')
    entry = chosen[0]
    try:
        entry['fitted'] = cascade_config(entry.get('fitted') or {})
    except ValueError as e:
        raise CLIError(f'{path}: bad fitted cascade: {one_line(e)}') from None
    return entry


def cascade_lines(info: Dict[str, Any], heading: str = '## Resolution cascade') -> List[str]:
    """The card's cascade section: the fitted thresholds, what they bought on the test images, how to use them."""
    fitted, entry = info.get('cascade'), info.get('cascade_report')
    if not fitted:
        return []
    stages = ' -> '.join(f'{s} px' for s in fitted['resolutions'])
    lines = [heading, '',
             f"Every image at {fitted['resolutions'][0]} px first; only the images whose {fitted['rule']} confidence "
             f"is below the stage's threshold ({', '.join(f'{t:.3f}' for t in fitted['thresholds'])}) go on "
             f'({stages}). The thresholds were fitted on held-out training images, never the test set.']
    if entry:
        ref, chosen, timing = entry['reference'], entry['chosen_test'], entry.get('timing') or {}
        lines += ['', f"On the {entry['test_images']:,} test images: top-1 {chosen['top1']:.2f} at "
                      f"{chosen['gmacs']:.4f} mean GMACs, against {ref['top1']:.2f} at {ref['gmacs']:.4f} for "
                      f"{ref['resolution']} px alone ({chosen['gmacs'] / ref['gmacs']:.0%} of its multiply-adds); "
                      f"stops per stage {' / '.join(f'{f:.0%}' for f in chosen['stage_fractions'])}."]
        if 'speedup' in timing:
            lines[-1] += (f" Measured ({timing.get('device', 'cpu')}): {timing['speedup']:.2f}x the images/s of "
                          f"{ref['resolution']} px at batch {timing['batch_size']}.")
    lines += ['', '```python', 'from sct_timm.cascade import Cascade', '',
              'cascade = Cascade.from_model(model)  # the thresholds above, from the model\'s config',
              'out = cascade(images)  # a batch at the largest stage size: out.predictions, out.stages, out.gmacs',
              '```']
    return lines
