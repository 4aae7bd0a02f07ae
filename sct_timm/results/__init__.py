"""Shared result formats and rules: the tool layer below ``bench/`` and ``hub/``.

Both tools (and the experiment pipelines above them) read and write the same files and apply the same rules, so
each lives here once: `targets` (the zoo's accuracy targets as margins), `markdown` (the one table helper) and
`files` (the ``sct-bench`` results file, written and read in one place). This package imports only the core
(`sct_timm.utils`), never ``bench/``, ``hub/``, ``experiments/`` or a command.
"""
