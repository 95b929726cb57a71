"""The one exception type that means "the user asked for something impossible".

Entry points catch it, print a single line on stderr and exit with status 2.
"""
import sys
from typing import NoReturn


class UsageError(Exception):
    """Bad input: unknown name, out-of-range value, missing files, malformed config."""


def exit_usage(prog: str, err: Exception) -> NoReturn:
    msg = " ".join(str(err).split())  # always one line
    print(f"{prog}: error: {msg}", file=sys.stderr)
    sys.exit(2)
