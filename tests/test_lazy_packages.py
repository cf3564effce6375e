"""workflows.lazy: the engine, outbox and loader packages re-export their names lazily, and
the names type checkers see are the names the package gives."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("onboarding.engine", "onboarding.outbox", "workflows.loader")


def _type_checking_imports(package: str) -> dict[str, str]:
    """{name: submodule} of the ``if TYPE_CHECKING:`` imports in the package's ``__init__``."""
    path = ROOT / package.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                for alias in imp.names:
                    found[alias.asname or alias.name] = imp.module.removeprefix(package + ".")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_lazy_packages_give_what_type_checkers_see(package: str) -> None:
    """Every name the ``TYPE_CHECKING`` imports name is the object of that name in that
    submodule, and ``__all__`` lists all of them but private ones."""
    seen = _type_checking_imports(package)
    module = importlib.import_module(package)
    # ``__all__`` lists the public names; a private one may be given besides (tests use it)
    assert set(module.__all__) <= set(seen)
    assert all(n.startswith("_") for n in set(seen) - set(module.__all__))
    for name, sub in seen.items():
        home = importlib.import_module(f"{package}.{sub}")
        assert getattr(module, name) is getattr(home, name), name
    assert set(seen) <= set(dir(module))


@pytest.mark.parametrize("package", PACKAGES)
def test_lazy_packages_refuse_an_unknown_name(package: str) -> None:
    """A name the package does not give raises AttributeError, as a module's attribute does."""
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018
    assert not hasattr(module, "no_such_name")


def test_lazy_packages_load_a_submodule_only_when_a_name_of_it_is_used() -> None:
    """In a fresh process, importing the engine loads none of its submodules; asking for
    ``advance`` loads ``writing`` and what it imports, not ``bulk``, ``starting``, ``amending``."""
    code = (
        "import sys\n"
        "from onboarding import engine\n"
        "before = sorted(m for m in sys.modules if m.startswith('onboarding.engine.'))\n"
        "engine.advance\n"
        "after = sorted(m for m in sys.modules if m.startswith('onboarding.engine.'))\n"
        "print(before, after)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == (
        "[] ['onboarding.engine.planning', 'onboarding.engine.rows', 'onboarding.engine.writing']"
    )
