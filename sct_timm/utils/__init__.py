"""Helpers every sct-timm command shares: one-line errors and exit codes, logging, list flags, atomic writes."""
from .cli import USER_ERRORS, CLIError, ListAction, cli_main, one_line, parse_list, run_command, setup_logging
from .io import atomic_path, atomic_write_bytes, atomic_write_text
