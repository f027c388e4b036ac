"""The dependency direction of STYLE.md as tests, checked two independent ways.

1. import-linter (`lint-imports`) with the contracts in pyproject.toml — and proof that it fails: the
   same contracts run on a copy of the package with a violating import added must report it broken.
2. A plain `ast` scan of every module of every app against the layer ranks written out below.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "siyu"
LAYERS_CONTRACT = "Product layers point one way (STYLE.md)"
ANALYTICS_CONTRACT = "Nobody imports analytics except the console"
PURE_CONTRACT = "Pure domain modules stay free of Django (testable in microseconds)"

# Higher rank may import lower rank; equal ranks are independent siblings. Analytics and the
# simulator sit just below the console, so only the console can import analytics.
RANKS = {
    "wechat_sim": -1,  # the WeChat simulator is WeChat's side of the wire: it imports nothing of Siyu
    "core": 0,
    "customers": 1,
    "channels": 2,
    "wechat": 3,
    "loyalty": 4,
    "content": 5, "commerce": 5,
    "engagement": 6,
    "growth": 7,
    "analytics": 8, "simulation": 8,
    "console": 9,
}


def lint_imports_command() -> str:
    beside_python = Path(sys.executable).parent / "lint-imports"
    found = str(beside_python) if beside_python.exists() else shutil.which("lint-imports")
    assert found, "lint-imports not installed: install the dev dependency group (import-linter)"
    return found


def run_lint_imports(project: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first so that a copied package shadows the installed one.
    env = {**os.environ, "PYTHONPATH": str(project), "COLUMNS": "200"}
    return subprocess.run(
        [lint_imports_command(), "--no-cache", "--config", str(project / "pyproject.toml")],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def apps() -> list[str]:
    return sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))


def test_contracts_are_kept():
    result = run_lint_imports(ROOT)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    for name in (LAYERS_CONTRACT, ANALYTICS_CONTRACT, PURE_CONTRACT):
        assert f"{name} KEPT" in report, report


def test_every_app_has_a_layer():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    placed = {name.strip().strip("()") for layer in layers for name in layer.split("|")}
    missing = [app for app in apps() if f"siyu.{app}" not in placed and app != "wechat_sim"]
    assert not missing, f"place these apps in the layers contract of pyproject.toml: {missing}"
    assert not [app for app in apps() if app not in RANKS], "and give them a rank in RANKS above"


@pytest.mark.parametrize(("module", "code", "contract", "culprit"), [
    ("siyu/core/violation.py", "from siyu.customers import models\n", LAYERS_CONTRACT, "siyu.core.violation"),
    ("siyu/customers/violation.py", "import siyu.channels.models\n", LAYERS_CONTRACT, "siyu.customers.violation"),
    ("siyu/simulation/violation.py", "from siyu.analytics import selectors\n", ANALYTICS_CONTRACT,
     "siyu.simulation.violation"),
    ("siyu/core/timeutil.py", "\nfrom django.utils import timezone\n", PURE_CONTRACT, "siyu.core.timeutil"),
], ids=["core-imports-customers", "customers-imports-channels", "simulation-imports-analytics", "pure-imports-django"])
def test_a_violating_import_breaks_the_contract(tmp_path, module, code, contract, culprit):
    copy = tmp_path / "project"
    shutil.copytree(PACKAGE, copy / "siyu", ignore=shutil.ignore_patterns("__pycache__", "static", "templates"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / module
    target.write_text((target.read_text() if target.exists() else "") + code)
    result = run_lint_imports(copy)
    report = result.stdout + result.stderr
    assert result.returncode != 0, report
    assert f"{contract} BROKEN" in report, report
    assert culprit in report, report


# --- the independent ast check ---------------------------------------------------------------------

def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module a source imports (function-level and relative imports too)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def layer_violations(app: str, imports: set[str]) -> list[str]:
    wrong = []
    for name in sorted(imports):
        parts = name.split(".")
        if parts[0] != "siyu" or len(parts) < 2 or parts[1] not in RANKS or parts[1] == app:
            continue  # third-party, the project root (settings, urls, api) or the app itself
        if RANKS[parts[1]] >= RANKS[app]:
            wrong.append(name)
    return wrong


def test_no_module_imports_a_higher_or_sibling_layer():
    problems = {}
    for app in apps():
        for path in (PACKAGE / app).rglob("*.py"):
            relative = path.relative_to(ROOT).with_suffix("")
            is_package = relative.name == "__init__"
            module = ".".join(relative.parent.parts if is_package else relative.parts)
            wrong = layer_violations(app, imported_modules(path.read_text(), module, is_package))
            if wrong:
                problems[module] = wrong
    assert not problems, problems


def test_ast_check_catches_violations():
    assert layer_violations("core", imported_modules("from siyu.customers.models import Customer",
                                                     "siyu.core.x")) == ["siyu.customers.models",
                                                                         "siyu.customers.models.Customer"]
    relative = imported_modules("def later():\n    from ..analytics import selectors\n", "siyu.channels.services")
    assert "siyu.analytics.selectors" in layer_violations("channels", relative)
    assert layer_violations("simulation", {"siyu.analytics"}) == ["siyu.analytics"]  # siblings
    assert layer_violations("console", {"siyu.analytics.selectors", "siyu.core.models"}) == []
    assert layer_violations("customers", {"siyu.api", "django.db", "siyu.customers.models"}) == []
