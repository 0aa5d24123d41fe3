"""The project imports only downwards: config -> utils -> models -> datasets -> pipelines -> programs.

Every project module's imports are read with `ast` (also those inside functions); a module may import from its own
layer or a lower one, and a program (a top-level script) imports no other program.
"""
from __future__ import annotations

import ast
import sys
from collections.abc import Collection
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"config": 0, "utils": 1, "models": 2, "datasets": 3, "pipelines": 4}
PROGRAM_LAYER = 5
PACKAGES = ("utils", "models", "datasets", "pipelines")
# Imports that break the rule, each (importing module, imported module): none today; keep it that way.
KNOWN: set[tuple[str, str]] = set()


def project_modules() -> dict[str, Path]:
    """Module name -> file for config, the packages and the programs (top-level scripts and docs/*.py; tests and
    .venv excluded)."""
    modules = {path.stem: path for path in ROOT.glob("*.py")}
    modules.update({f"docs.{path.stem}": path for path in (ROOT / "docs").glob("*.py")})
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def layer_of(module: str, programs: set[str]) -> int | None:
    """The layer of a project module, None for a module outside the project."""
    top = module.split(".")[0]
    if top in LAYERS:
        return LAYERS[top]
    return PROGRAM_LAYER if top in programs or top == "docs" else None


def imported_modules(path: Path, package: str, modules: Collection[str]) -> set[str]:
    """Absolute names of the modules `path` imports: `from a import b` is a.b when that is one of `modules`, else a."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import x` in package a.b is a.b.x, `from .. import x` is a.x
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
    return names


def upward_imports() -> set[tuple[str, str]]:
    """(module, imported project module) pairs that run from a lower layer to a higher one, or program to program."""
    modules = project_modules()
    programs = {name for name, path in modules.items() if path.parent == ROOT and name != "config"}
    found = set()
    for name, path in modules.items():
        own = layer_of(name, programs)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target in imported_modules(path, package, modules):
            if target not in modules:
                continue  # a module outside the project
            other = layer_of(target, programs)
            if other is not None and target != name and (other > own or (own == other == PROGRAM_LAYER)):
                found.add((name, target))
    return found


def test_no_module_imports_from_a_higher_layer_and_no_program_imports_a_program() -> None:
    new = sorted(upward_imports() - KNOWN)
    assert not new, "imports from a higher layer (or program to program): " + ", ".join(f"{a} -> {b}" for a, b in new)


def test_known_exceptions_are_still_there() -> None:
    """A listed exception that no longer exists must leave the list (so the list only shrinks)."""
    gone = sorted(KNOWN - upward_imports())
    assert not gone, f"no longer imported, delete from KNOWN: {gone}"


@pytest.mark.parametrize("source, expected", [
    ("import models.hmr\n", {("utils.fake", "models.hmr")}),
    ("def f():\n    from pipelines import session\n", {("utils.fake", "pipelines.session")}),
    ("from utils.geometry import rot6d_to_rotmat\nimport numpy\n", set()),
])
def test_the_checker_sees_upward_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                                         expected: set) -> None:
    """The detector itself: a utils module importing models or datasets (also inside a function) is caught."""
    fake = tmp_path / "utils" / "fake.py"
    fake.parent.mkdir()
    fake.write_text(source)
    real = project_modules()
    monkeypatch.setattr(sys.modules[__name__], "project_modules", lambda: {**real, "utils.fake": fake})
    assert {pair for pair in upward_imports() if pair[0] == "utils.fake"} == expected
