"""The package's layers, read from the source: the core never imports the tools or the commands (a ``__main__``
entry point may call its command), no tool package
imports a sibling it sits beside, nothing imports in a circle, and no module outgrows one concept (ARCHITECTURE.md)."""
import ast
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'sct_timm'
TOOLS = ('bench', 'hub', 'results', 'experiments')
COMMANDS = 'cli'
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path) -> Iterator[Tuple[str, int]]:
    """Every ``sct_timm`` module ``path`` imports (at any depth of the file), with the line."""
    name = _module_name(path)
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            targets = [module] + [f'{module}.{alias.name}' for alias in node.names]
        else:
            continue
        for target in targets:
            if target == 'sct_timm' or target.startswith('sct_timm.'):
                yield target, node.lineno


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob('*.py'))}


def _resolve(target: str, modules: Dict[str, Path]) -> str:
    """The module a dotted import target names (``sct_timm.convert.sbn_layers`` -> ``sct_timm.convert``)."""
    while target not in modules and '.' in target:
        target = target.rpartition('.')[0]
    return target


def _layer(module: str) -> str:
    parts = module.split('.')
    if len(parts) > 1 and parts[1] in (*TOOLS, COMMANDS):
        return parts[1]
    return 'core'


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    return {name: {_resolve(t, modules) for t, _ in _imports(path)} - {name} for name, path in modules.items()}


def test_the_core_imports_no_tool_and_no_command():
    modules = _modules()
    bad = [f'{path.relative_to(ROOT)}:{line} imports {target}'
           for name, path in modules.items() if _layer(name) == 'core' and name != 'sct_timm'
           for target, line in _imports(path) if _layer(_resolve(target, modules)) != 'core'
           and not (path.name == '__main__.py' and _layer(_resolve(target, modules)) == COMMANDS)]
    assert not bad, 'core modules import tools or commands:\n' + '\n'.join(bad)


def test_tools_import_downwards_and_commands_only_from_entry_points():
    # results/ is the tools' shared ground; bench/ and hub/ stand side by side on it; experiments/ uses them all
    allowed = {'results': {'core'}, 'bench': {'core', 'results'}, 'hub': {'core', 'results'},
               'experiments': {'core', 'results', 'bench', 'hub'}, COMMANDS: {'core', *TOOLS, COMMANDS}}
    modules = _modules()
    bad = []
    for name, path in modules.items():
        layer = _layer(name)
        if layer == 'core':
            continue
        for target, line in _imports(path):
            target_layer = _layer(_resolve(target, modules))
            entry_point = path.name == '__main__.py' and target_layer == COMMANDS
            if target_layer != layer and target_layer not in allowed[layer] and not entry_point:
                bad.append(f'{path.relative_to(ROOT)}:{line} ({layer}) imports {target} ({target_layer})')
    assert not bad, '\n'.join(bad)


def test_no_import_cycle():
    graph = _graph()
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: list = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == 'sct_timm' or nxt not in graph:
                continue  # the package's face re-exports its modules; importing it is importing them
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize('folder', ['sct_timm', 'benchmarks', 'tests'])
def test_no_module_over_the_line_limit(folder):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / folder).rglob('*.py'))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f'modules over {MAX_LINES} lines (split them by concern): {long}'


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """The rules above would fail on a core module importing a tool (the check is not vacuous)."""
    fake = tmp_path / 'sct_timm'
    (fake / 'hub').mkdir(parents=True)
    (fake / '__init__.py').write_text('')
    (fake / 'hub' / '__init__.py').write_text('')
    (fake / 'hub' / 'cards.py').write_text('from ..scales import SCT_A\n')
    (fake / 'scales.py').write_text('from .hub.cards import render\n')
    monkeypatch.setattr(__import__(__name__), 'ROOT', tmp_path)
    monkeypatch.setattr(__import__(__name__), 'PACKAGE', fake)
    with pytest.raises(AssertionError, match=r'scales.py:1 imports sct_timm.hub.cards'):
        test_the_core_imports_no_tool_and_no_command()
    with pytest.raises(pytest.fail.Exception, match='import cycle'):
        test_no_import_cycle()
