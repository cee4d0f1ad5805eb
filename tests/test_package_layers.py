"""The layers hold: ops <- components <- stages <- cli,
and stages don't call each other's entry points."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "pipeline"
ORCHESTRATOR = "run"  # stages/run.py executes recipes: the one stage that calls other stages


def imported_modules(path: Path) -> set[str]:
    """Every ``pipeline...`` module a file imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("pipeline.")}


def stage_imports(path: Path) -> set[str]:
    """The stage modules a file imports (``pipeline.stages.<name>`` -> ``<name>``)."""
    stages = {p.stem for p in (PACKAGE / "stages").glob("*.py") if p.stem != "__init__"}
    parts = (name.split(".") for name in imported_modules(path))
    return {p[2] for p in parts if len(p) > 2 and p[1] == "stages" and p[2] in stages}


def test_components_and_ops_never_import_a_stage():
    below = [p for p in PACKAGE.rglob("*.py") if p.parent.name not in ("stages", "cli")]
    offenders = {str(p.relative_to(PACKAGE)): stage_imports(p) for p in below if stage_imports(p)}
    assert not offenders


def test_only_the_orchestrator_calls_other_stages():
    calls = {
        (p.stem, other)
        for p in (PACKAGE / "stages").glob("*.py")
        if p.stem != ORCHESTRATOR
        for other in stage_imports(p)
        if other != p.stem
    }
    assert not calls, f"stage -> stage imports outside stages/{ORCHESTRATOR}.py: {sorted(calls)}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from pipeline.stages.tune import run_tune\n    import pipeline.stages.qa\n"
    )
    assert stage_imports(module) == {"tune", "qa"}
