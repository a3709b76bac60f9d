"""The engine's shape: stages import only the stages below them, no import cycle, nothing done at import."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

ENGINE = ROOT / "delt_engine"
# Each stage may import the foundation (errors, fileio, progress) and the stages listed here. The
# order is DELT's: data -> scoring / organize / training -> jobs -> workspace -> experiments -> cli.
FOUNDATION = {"errors", "fileio", "progress"}
ALLOWED = {
    "errors": set(),
    "fileio": {"errors"},
    "progress": {"errors"},
    "data": set(),
    "demo": set(),
    "models": set(),
    "scoring": {"data", "models"},
    "organize": {"data"},
    "training": {"data", "models"},
    "jobs": {"data", "models", "scoring", "training"},
    "workspace": {"data", "demo", "jobs", "organize", "scoring"},
    "experiments": {"data", "demo", "jobs", "models", "organize", "scoring", "training", "workspace"},
    "cli": {"data", "demo", "experiments", "jobs", "models", "organize", "scoring", "training", "workspace", ""},
}
LIGHT = (
    "delt_engine",
    "delt_engine.experiments.spec",
    "delt_engine.organize.configs",
    "delt_engine.scoring.cost",
    "delt_engine.scoring.registry",
    "delt_engine.scoring.lqs_config",
    "delt_engine.training.metrics",
    "delt_engine.workspace.datasets",
    "delt_engine.workspace.scorings",
    "delt_engine.workspace.runs",
    "delt_engine.cli",
)


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every engine module and the engine modules it imports anywhere (also inside functions)."""
    modules = {_module(p): p for p in ENGINE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = (
                    ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                    if node.level
                    else (node.module or "")
                )
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    found.add(target if target in modules else base)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycle_among_engine_modules():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path + [node, nxt])
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_stages_import_only_the_stages_below_them():
    wrong = []
    for module, targets in _imports().items():
        stage = _stage(module)
        if stage in ("", "__main__"):
            continue
        allowed = ALLOWED[stage] | FOUNDATION | {stage}
        wrong += [f"{module} imports {t}" for t in targets if _stage(t) not in allowed]
    assert not wrong, "\n".join(sorted(wrong))


def test_importing_the_engine_does_nothing_but_import(tmp_path):
    """Every engine module imports in an empty folder without creating files or touching the umask, and
    the light modules (configs, registries, the app's estimates) do not load torch."""
    code = f"""
import importlib, json, os, pkgutil, sys
sys.path.insert(0, {str(ROOT)!r})
before = os.umask(0o022); os.umask(before)
light = {{}}
for name in {list(LIGHT)!r}:
    importlib.import_module(name)
light = "torch" in sys.modules
import delt_engine
for info in pkgutil.walk_packages(delt_engine.__path__, "delt_engine."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
after = os.umask(0o022); os.umask(after)
print(json.dumps({{"torch_after_light": light, "umask_same": before == after}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"torch_after_light": False, "umask_same": True}
    assert list(tmp_path.iterdir()) == []  # no workspace, cache or log folder made at import
