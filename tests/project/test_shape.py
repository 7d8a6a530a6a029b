"""The design card, checked: no function past 60 lines, no class past 200, no call passing more than 8 arguments by
position, no import cycle, the layers importing downwards only (ui → serve, series → formats → engine → plan → models →
config/errors; imports inside functions count too), the planner importing without torch or diffusers, and the tiny
random checkpoints' builders (``sd_img2img.testing``) imported only where a ``random*`` model is asked for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from appserver import ROOT

PRODUCT = [ROOT / "app.py", *sorted((ROOT / "sd_img2img").rglob("*.py"))]
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 200
MAX_POSITIONAL = 8
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


def test_no_call_passes_more_than_8_arguments_by_position():
    crowded = []
    for path in PRODUCT:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                positional = [a for a in node.args if not isinstance(a, ast.Starred)]
                if len(positional) > MAX_POSITIONAL:
                    crowded.append(f"{path.relative_to(ROOT)}:{node.lineno} passes {len(positional)} by position")
    assert not crowded, "\n".join(crowded)


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


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_planner_imports_and_plans_without_torch_or_diffusers():
    """Done-when: ``sd_img2img.plan`` with torch and diffusers blocked; and it plans and checks a request there."""
    done = _python(
        "import sys; sys.modules['torch'] = None; sys.modules['diffusers'] = None\n"
        "import sd_img2img.plan\n"
        "from sd_img2img.plan import checks, prepare, request, rules, step_plan, timing, noise, images\n"
        "checks.check_inputs(request.GenerationRequest('fire', init_image='x.png', steps=10, strength=0.7))\n"
        "print(step_plan.plan_steps(10, 0.7).describe())"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10 steps × strength 0.7 → 7 steps will run (3 skipped)"


def test_the_tiny_builders_are_imported_only_where_a_random_model_is_asked_for():
    """The product's modules import ``sd_img2img.testing`` only inside the functions that build a ``random*`` model;
    importing the page, the command line, the engine and the Ray backend leaves it unimported."""
    at_top = []
    for path in PRODUCT:
        if module_name(path).startswith("sd_img2img.testing"):
            continue
        for node in ast.parse(path.read_text()).body:  # top-level statements only
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n.startswith("sd_img2img.testing") for n in names):
                at_top.append(str(path.relative_to(ROOT)))
    assert not at_top, at_top
    done = _python(
        "import sys, sd_img2img.ui.app, sd_img2img.cli, sd_img2img.engine.model_set, sd_img2img.serve.backend\n"
        "print([m for m in sys.modules if m.startswith('sd_img2img.testing')])"
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
