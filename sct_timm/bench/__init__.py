"""Benchmarks of SCT models against plain timm: ``sct-bench`` (accuracy and cost per test resolution) and
``sct-overhead`` (what S-BN and the SCT training step cost).

One concern per module: `environment` (what a timing depends on), `timing` (latency, throughput, interleaved
rounds, GMACs), `models` (``--model`` specs and building them), `results` (JSON/CSV/markdown), `plots`, `sweep` and
`overhead` (the measurements, as libraries), and `sweep_cli` / `overhead_cli` (the commands).
"""
