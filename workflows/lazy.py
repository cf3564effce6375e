"""Lazy re-exports for a package's ``__init__`` (PEP 562 module ``__getattr__``).

The engine, the outbox and the definition loader are packages of one module per concept whose
``__init__`` re-exports the names callers used when each was one module. Importing every
submodule there would put on every command's path what only some commands use: ``track
advance`` needs the engine's ``writing`` but not its ``bulk``, the outbox's scheduling but not
its claims, the loader's model builder but not its validator (issue 14: "nothing on a
command's path imports what the command does not use"). So a name is imported from its home
the first time it is asked for, and then kept in the package like an ordinary attribute.

Type checkers do not run this: the ``__init__`` imports the same names under
``TYPE_CHECKING``, and ``tests/test_lazy_packages.py`` checks that both lists agree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def exports(
    package: str, homes: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names live in the submodules given as
    ``{submodule: (name, ...)}``."""
    home_of = {name: sub for sub, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        sub = home_of.get(name)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # ``__import__`` rather than ``importlib.import_module``: it is the import statement's
        # own path, so ``python -X importtime`` lists the module (tests/test_startup.py).
        __import__(f"{package}.{sub}")
        value = getattr(sys.modules[f"{package}.{sub}"], name)
        setattr(sys.modules[package], name, value)  # asked once: an attribute from now on
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *home_of})

    return __getattr__, __dir__
