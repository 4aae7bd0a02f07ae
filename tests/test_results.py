"""`sct_timm.results`: the accuracy targets' margins worked by hand, the markdown tables, and the results file read
back as it was written."""
import pytest

from sct_timm.results.files import RESULTS_CSV, RESULTS_JSON, RESULTS_MD, ResultsWriter, load_results
from sct_timm.results.markdown import column_table, format_value, table
from sct_timm.results.targets import TargetSpec, margins_text, target_margins, target_text


def test_target_margins_by_hand():
    sct = {32: 80.0, 40: 74.0, 48: 79.0, 56: 77.0, 64: 82.0, 72: 70.0}
    dedicated = {'r64': (64, {32: 20.0, 40: 50.0, 48: 75.0, 56: 80.0, 64: 84.0}),
                 'r48': (48, {40: 77.0, 48: 80.5, 56: 78.0}),
                 'r32': (32, {32: 79.0, 40: 70.0})}
    margins = target_margins(sct, dedicated, (64, 48, 32), float32={32: 80.04, 48: 79.0, 64: 82.2})
    assert margins['at_scales'] == pytest.approx({'margin': 82.0 - 84.0, 'size': 64})  # 32: +1, 48: -1.5, 64: -2
    assert margins['between'] == pytest.approx({'margin': 74.0 - 77.0 + 2, 'size': 40})  # 56: 77-80+2 = -1
    # 40 is midway: both 32 (80) and 48 (79) count, the more accurate decides; 72 is outside [32, 64]
    assert margins['neighbours'] == pytest.approx({'margin': 74.0 - 80.0 + 5, 'size': 40})
    assert margins['stored'] == pytest.approx({'margin': 0.1 - 0.2, 'size': 64})
    assert set(target_margins({64: 1.0}, {}, (64, 32))) == set()  # nothing measured, nothing claimed


def test_target_spec_sets_targets_and_tolerances():
    sct = {16: 84.0, 20: 85.0, 32: 88.0, 40: 87.0, 64: 89.5, 80: 86.0, 96: 83.0}
    dedicated = {'r64': (64, {40: 30.0, 64: 91.5}), 'r32': (32, {20: 9.0, 32: 87.0, 40: 88.5}),
                 'r16': (16, {16: 85.0, 20: 86.5})}
    spec = TargetSpec(between=1.0, neighbours=None, above=2.0, tradeoff=4.0, accuracy=93.0)
    margins = target_margins(sct, dedicated, (64, 32, 16), spec=spec)
    assert list(margins) == ['accuracy', 'at_scales', 'between', 'above', 'tradeoff']  # neighbours left out
    assert margins['accuracy'] == pytest.approx({'margin': 91.5 - 93.0, 'size': 64})
    assert margins['at_scales'] == pytest.approx({'margin': 89.5 - 91.5, 'size': 64})
    assert margins['between'] == pytest.approx({'margin': 85.0 - 86.5 + 1.0, 'size': 20})  # 40: 87-88.5+1 too
    assert margins['above'] == pytest.approx({'margin': 83.0 - 89.5 + 2.0, 'size': 96})  # the worse of 80 and 96
    assert margins['tradeoff'] == pytest.approx({'margin': 84.0 - 89.5 + 4.0, 'size': 16})
    # without the largest scale measured, the targets against it are not claimed
    assert set(target_margins({16: 80.0, 96: 70.0}, {}, (64, 16), spec=spec)) == set()
    text = margins_text((64, 32, 16), sorted(sct), spec)
    assert 'between = worst (SCT - best dedicated) at 20/40 + 1' in text and 'neighbours' not in text
    assert 'above = worst (SCT at 80/96 - SCT at 64) + 2' in text and 'tradeoff = SCT at 16 - SCT at 64 + 4' in text
    assert target_text('between', spec) == \
        'between the scales, within 1 points of the best dedicated model at that size'
    assert 'at or above' in target_text('at_scales', spec)


def test_target_spec_round_trips_and_rejects_bad_entries():
    spec = TargetSpec(between=1.0, neighbours=None, above=2.0)
    assert TargetSpec.from_dict(spec.to_dict()) == spec
    assert TargetSpec.from_dict({}) == TargetSpec()
    with pytest.raises(ValueError, match="unknown target 'betwen'"):
        TargetSpec.from_dict({'betwen': 1.0})
    with pytest.raises(ValueError, match="target 'above' needs a number or null"):
        TargetSpec.from_dict({'above': '2'})


def test_markdown_tables_escape_cells_and_show_missing_values():
    assert table(['a', 'b'], [[1, 'x|y'], ['two\nlines', None]]) == \
        '| a | b |\n|---|---|\n| 1 | x\\|y |\n| two lines | None |'
    rows = [{'name': 'r', 'top1': 91.234, 'count': 3, 'ok': True}]
    columns = [('name', 'Name', None), ('top1', 'Top-1', 2), ('count', 'N', 1), ('ok', 'OK', None), ('gone', 'X', 3)]
    assert column_table(rows, columns) == \
        '| Name | Top-1 | N | OK | X |\n|---|---|---|---|---|\n| r | 91.23 | 3.0 | yes | - |'
    assert [format_value(v) for v in (None, True, 0.5, [64, 32], 'x')] == ['-', 'yes', '0.50', '64, 32', 'x']
    assert format_value(1e-4, None) == '0.0001'


def test_results_file_is_read_back_as_written(tmp_path):
    writer = ResultsWriter(tmp_path / 'bench', {'device': 'cpu'}, {'dataset': 'fmnist'})
    for resolution in (32, 64):
        writer.add({'model': 'sct_resnet18', 'dataset': 'fmnist', 'resolution': resolution, 'top1': float(resolution)})
    assert sorted(p.name for p in (tmp_path / 'bench').iterdir()) == [RESULTS_CSV, RESULTS_JSON, RESULTS_MD]
    doc = load_results(tmp_path / 'bench' / RESULTS_JSON)
    assert doc['environment'] == {'device': 'cpu'} and [r['resolution'] for r in doc['results']] == [64, 32]
    assert '| sct_resnet18 | - | 64 | - | 64.00 |' in (tmp_path / 'bench' / RESULTS_MD).read_text()
