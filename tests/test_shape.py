"""The design card, checked: no function past 80 lines, no class past 250, no import cycle, and the layers import
downwards only (ui → serve, series → formats → engine → plan → models → config/errors). Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from appserver import ROOT

PRODUCT = [ROOT / "app.py", *sorted((ROOT / "sd_img2img").rglob("*.py"))]
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 250
# what each layer may import, besides itself and the package's top-level modules (config, errors, cache, …)
LAYERS = {
    "models": set(),
    "testing": {"models"},  # tiny random checkpoints: imported by the tests, and where a random* model is asked for
    "plan": {"models"},
    "engine": {"models", "plan", "testing"},
    "formats": {"models", "plan", "engine"},
    "series": {"models", "plan", "engine", "formats"},
    "serve": {"models", "plan", "engine"},  # the Ray Serve backend: model workers behind the engine interface
    "ui": {"models", "plan", "engine", "formats", "series", "serve"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The sd_img2img modules ``path`` imports, at the top or inside functions."""
    known = {module_name(p) for p in PRODUCT}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sd_img2img"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sd_img2img")}
    return found


def test_no_function_or_class_is_too_long():
    too_long = []
    for path in PRODUCT:
        for node in ast.walk(ast.parse(path.read_text())):
            lines = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and lines > limit:
                too_long.append(f"{path.relative_to(ROOT)}::{node.name} is {lines} lines (at most {limit})")
    assert not too_long, "\n".join(too_long)


def test_no_import_cycle():
    graph = {module_name(p): imports(p) for p in PRODUCT}
    cycles, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(" → ".join(path[path.index(module) :] + [module]))
            return
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            # importing a package's module runs the package's __init__ first, which is not a use of that module
            if target != module and not module.startswith(target + "."):
                visit(target, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, "\n".join(sorted(set(cycles)))


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_downwards_only(layer):
    wrong = []
    for path in PRODUCT:
        name = module_name(path)
        if name.split(".")[1:2] != [layer]:
            continue
        for target in imports(path):
            other = target.split(".")[1] if target.count(".") else ""
            if other in LAYERS and other != layer and other not in LAYERS[layer]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)
