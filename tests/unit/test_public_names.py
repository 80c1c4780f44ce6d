"""Every module's ``__all__`` is sorted and names only what exists (STYLE.md)."""

import importlib
import pkgutil
import re
import types

import pytest

import runyard

# Alembic's environment and revision scripts are run by Alembic, and ``__main__`` by
# ``python -m``; none of them is imported as a module.
_NOT_MODULES = re.compile(r"^runyard\.(storage\.migrations\.(env|versions\..+)|(.+\.)?__main__)$")


def _module_names() -> list[str]:
    names = ["runyard"]
    for info in pkgutil.walk_packages(runyard.__path__, prefix="runyard."):
        if not _NOT_MODULES.match(info.name):
            names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def _isort_key(name: str) -> tuple[int, list[object]]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then everything else; natural order."""
    if name.isupper() and len(name) > 1:
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return kind, natural


def _is_sorted(names: list[str]) -> bool:
    return names == sorted(names) or names == sorted(names, key=_isort_key)


def test_modules_are_found() -> None:
    assert {"runyard", "runyard.errors", "runyard.core.states", "runyard.app.service"} <= set(
        MODULES
    )


def test_the_package_exports_its_api() -> None:
    for name in ("Pipeline", "step", "pipeline", "create_job", "get_step_param", "RunyardError"):
        assert name in runyard.__all__


@pytest.mark.parametrize("module_name", MODULES)
def test_all_is_sorted_unique_and_every_name_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        # Only packages whose __init__ defines nothing may go without __all__.
        assert hasattr(module, "__path__"), f"{module_name} has no __all__"
        public = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and not isinstance(v, types.ModuleType)
        ]
        assert public == [], f"{module_name} defines {public} but has no __all__"
        return
    assert isinstance(exported, list | tuple)
    names = list(exported)
    assert len(set(names)) == len(names), f"{module_name}.__all__ repeats a name"
    assert _is_sorted(names), f"{module_name}.__all__ is not sorted: {names}"
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == [], f"{module_name}.__all__ names what does not exist: {missing}"
