"""Benchmarks of SCT models against plain timm, as libraries: ``sct-bench`` (accuracy and cost per test resolution),
``sct-overhead`` (what S-BN and the SCT training step cost), int8 against float, and training speed.

One concern per module: `environment` (what a timing depends on), `timing` (latency, throughput, interleaved
rounds, GMACs), `sweep`, `overhead`, `int8` and `train_speed` (the measurements), `overhead_report` (``sct-overhead``'s
files; ``sct-bench``'s are `sct_timm.results.files`) and `plots`. Their commands live in `sct_timm.cli`; models are
built by `sct_timm.build`.
"""
