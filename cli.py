"""The ``onboarding`` command line: parse options, call one library function, format the result.

The commands live in ``onboarding.commands``, one module per command group, and are imported
only when invoked (click's lazy group pattern, ``onboarding.commands.root``), so a command pays
only for what it uses and ``onboarding --help`` imports no command module at all. User errors
(``onboarding.errors.OnboardingError``) become one line on stderr and exit code 2; anything
else is a bug and exits 1.

The program is ``main``: it offers the command line to the fast path first
(``onboarding.commands.fast``: ``track advance`` and ``track show`` without importing click),
and gives anything that path does not fully understand to the click group ``cli``, which is
built when first asked for (``import cli; cli.cli``), so the fast path never imports click.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from onboarding.commands import COMMANDS

if TYPE_CHECKING:
    from onboarding.commands.root import LazyGroup, cli

__all__ = ["COMMANDS", "LazyGroup", "cli", "main"]


def main() -> Any:
    """Run the program on ``sys.argv``: the fast path where it applies, else click."""
    from onboarding.commands import fast

    code = fast.run(sys.argv[1:])
    if code is None:
        from onboarding.commands.root import cli

        return cli()
    # As the click group does when run as the program (LazyGroup.main): objects built so far
    # are frozen, so the collections at exit need not traverse them.
    import gc

    gc.freeze()
    return code


def __getattr__(name: str) -> Any:
    """``cli.cli`` (the click group) and ``cli.LazyGroup``, imported on first use."""
    if name in ("cli", "LazyGroup"):
        from onboarding.commands import root

        return getattr(root, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
