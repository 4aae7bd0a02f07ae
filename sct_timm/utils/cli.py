"""What every sct-timm command does the same way: user errors as one line with exit status 2, timm's log format,
and list flags in timm's space-separated form as well as comma-separated."""
import argparse
import logging
import sys
from typing import Any, Callable, List, Optional, Sequence

from timm.utils import FormatterNoInfo

__all__ = [
    'CLIError', 'EXIT_USER_ERROR', 'USER_ERRORS', 'one_line', 'setup_logging', 'cli_main', 'run_command', 'parse_list',
    'ListAction',
]

EXIT_USER_ERROR = 2  # argparse's status for bad usage; every command uses it for bad input too
USER_ERRORS = (ValueError, TypeError, RuntimeError, OSError, KeyError, IndexError)
"""Exceptions that, raised while building a model or reading data for a command, mean bad input or an unsupported
setting rather than a bug: commands turn them into a one-line `CLIError` that names what failed."""


class CLIError(Exception):
    """Bad input (a missing file, a corrupt checkpoint, an unknown model): printed as ``prog: error: ...``, no
    traceback, exit status 2. Raised before anything is written, or where what was written stays valid."""


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (whitespace folded), cut at ``limit`` characters."""
    text = ' '.join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + '...'


_log_handler: Optional[logging.Handler] = None


def setup_logging(level: int = logging.INFO) -> None:
    """timm's log format on the current stderr. Calling it again (in-process runs, tests) replaces the handler."""
    global _log_handler
    root = logging.getLogger()
    if _log_handler is not None:
        root.removeHandler(_log_handler)
    _log_handler = logging.StreamHandler(sys.stderr)
    _log_handler.setFormatter(FormatterNoInfo())
    root.addHandler(_log_handler)
    root.setLevel(level)


def cli_main(prog: str, run: Callable[[], Any]) -> int:
    """Run a command's body; a `CLIError` becomes one ``prog: error: ...`` line on stderr and exit status 2."""
    try:
        run()
    except CLIError as e:
        print(f'{prog}: error: {one_line(e, 1000)}', file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


def run_command(
        prog: str,
        parse: Callable[[Optional[Sequence[str]]], Any],
        run: Callable[[Any], Any],
        argv: Optional[Sequence[str]] = None,
) -> int:
    """A command's ``main``: logging set up, ``argv`` parsed (argparse exits 2 on bad flags), ``run(args)`` under
    `cli_main`; returns the exit status, so tests call ``main([...])`` in-process."""
    setup_logging()
    args = parse(argv)
    return cli_main(prog, lambda: run(args))


def parse_list(values: 'str | Sequence[Any] | None', type: Callable[[str], Any] = str) -> Optional[List[Any]]:
    """Flatten list-flag values: ``['64', '32']``, ``['64,32']``, ``'64, 32'`` and ``[64, 32]`` all give [64, 32].

    Accepts both timm's form (``nargs='+'``: space-separated) and the comma form, and lists read from YAML configs.
    """
    if values is None:
        return None
    if isinstance(values, (str, int, float)):
        values = [values]
    out: List[Any] = []
    for value in values:
        if isinstance(value, str):
            out.extend(type(part) for part in value.replace(',', ' ').split())
        else:
            out.append(type(value))
    return out


class ListAction(argparse.Action):
    """``nargs='+'`` list flag whose items may also be comma-separated (``--scales 64 32`` == ``--scales 64,32``).

    ``type`` converts each item after splitting; a bad item is argparse's usual one-line usage error.
    """

    def __init__(self, option_strings, dest, nargs='+', type=str, **kwargs):
        self.item_type = type
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            items = parse_list(values, self.item_type)
        except (TypeError, ValueError):
            raise argparse.ArgumentError(self, f'invalid value {" ".join(map(str, values))!r}: expected '
                                               f'{getattr(self.item_type, "__name__", "values")}s, space- or '
                                               f'comma-separated') from None
        setattr(namespace, self.dest, items)
