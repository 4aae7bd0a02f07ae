"""The pipelines behind ``benchmarks/*.py``: the zoo, the ablation, the conversion and the bf16 pairing.

Each runs ``sct-train`` / ``sct-bench`` / ``sct-hub`` as subprocesses (``python -m sct_timm.train``,
``sct_timm.cli.bench``, ``sct_timm.cli.hub``) and is resumable: a finished step is found by its files and not run
again. This is the top tool layer: it may import ``bench/``, ``hub/`` and ``results/``; nothing in sct_timm imports it
(only tests and the scripts under ``benchmarks/``). Paths come from the arguments (the scripts pass the clone's root),
never from where this package is installed.
"""
__all__ = []
