#!/usr/bin/env python3
"""Write tests/timm_train_flags.json, the parity test's reference: the value form of every flag of timm's train.py.

Usage: python tests/snapshot_timm_flags.py PATH/TO/timm/train.py [VERSION]
Only the parser's data is kept (names, dests, defaults, nargs, types, choices, action kinds, consts), no help text.
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_train_parity import SNAPSHOT, _timm_train_module, forms  # noqa: E402


def main() -> int:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-2])
    os.environ['TIMM_TRAIN_PY'] = sys.argv[1]
    module = _timm_train_module()
    doc = {'source': f'timm train.py, version {sys.argv[2] if len(sys.argv) == 3 else "unknown"}',
           'flags': forms(module.parser, module.config_parser)}
    SNAPSHOT.write_text(json.dumps(doc, indent=1, sort_keys=True) + '\n')
    print(f'{SNAPSHOT}: {len(doc["flags"])} flags')
    return 0


if __name__ == '__main__':
    sys.exit(main())
