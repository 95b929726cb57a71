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


def yaml_problem(err) -> str:
    """A YAML parse error as one phrase with its line and column: "line 3, column 12: expected
    ',' or ']', but got '{' (while parsing a flow sequence)"."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    what = " ".join(str(getattr(err, "problem", None) or err).split())
    context = getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + what + (f" ({' '.join(context.split())})" if context else "")
