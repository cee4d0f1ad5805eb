"""The layers hold: ops <- components <- stages <- cli, and stages don't call each other's entry
points; component packages import each other one way (``COMPONENT_ORDER``) and never the layout."""

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


# ---- component packages: one import direction, and none of them reads the layout ----------------
# Every component package, lowest first: each imports only packages to its left (ops: numpy
# kernels; config: the typed config and the name rule; data: readers and the folds table; model:
# networks, losses, augmentation, the checkpoint format; decide: stores, search, decision; train:
# the fold loop; predict: inference; output: submission formats; review: QA, plots, serve).
COMPONENT_ORDER = [
    "ops",
    "config",
    "data",
    "model",
    "decide",
    "train",
    "predict",
    "output",
    "review",
]
ABOVE_COMPONENTS = ("stages", "cli")  # they decide paths; components take what they are handed
LAYOUT = "paths"  # pipeline/paths.py: the on-disk layout


def component_packages(package: Path) -> set[str]:
    """The subpackages of ``package`` below stages and cli."""
    return {
        p.name
        for p in package.iterdir()
        if (p / "__init__.py").is_file() and p.name not in ABOVE_COMPONENTS
    }


def resolved_imports(path: Path, package: Path) -> set[str]:
    """Every module of ``package`` that a file in it imports, relative imports resolved
    (``from ..decide import store`` in ``review/x.py``: ``pipeline.decide.store``)."""
    here = path.relative_to(package.parent).parts[:-1]  # the file's own package
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = list(here[: len(here) - (node.level - 1)]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == package.name}


def component_graph(package: Path) -> dict[str, set[str]]:
    """``{component: the other components it imports}``, from every module below each one."""
    components = component_packages(package)
    graph: dict[str, set[str]] = {name: set() for name in components}
    for name in components:
        for path in (package / name).rglob("*.py"):
            for module in resolved_imports(path, package):
                target = module.split(".")[1] if "." in module else None
                if target in components and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, trail + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def layout_importers(package: Path) -> list[str]:
    """Component modules that import the layout (``<package>.paths``), however spelled."""
    layout = f"{package.name}.{LAYOUT}"
    return sorted(
        str(path.relative_to(package))
        for name in component_packages(package)
        for path in (package / name).rglob("*.py")
        if any(m == layout or m.startswith(layout + ".") for m in resolved_imports(path, package))
    )


def test_component_order_names_every_component_package():
    assert sorted(COMPONENT_ORDER) == sorted(component_packages(PACKAGE))


def test_component_packages_import_one_way_down_the_order():
    graph = component_graph(PACKAGE)
    assert find_cycle(graph) is None, f"import cycle between components: {find_cycle(graph)}"
    upward = sorted(
        f"{src} -> {dst}"
        for src, targets in graph.items()
        for dst in targets
        if COMPONENT_ORDER.index(dst) > COMPONENT_ORDER.index(src)
    )
    assert not upward, f"imports against COMPONENT_ORDER {COMPONENT_ORDER}: {upward}"


def test_no_component_imports_the_layout():
    assert not layout_importers(PACKAGE), "a stage hands components the paths they need"


def _package(root: Path, files: dict[str, str]) -> Path:
    """A throwaway package ``root/pkg``: ``files`` (relative path -> source), __init__s added."""
    package = root / "pkg"
    for rel, source in files.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.relative_to(root).parents[:-1]:
            (root / folder / "__init__.py").touch()
        path.write_text(source)
    return package


def test_the_checker_finds_a_planted_cycle(tmp_path):
    package = _package(
        tmp_path,
        {
            "low/a.py": "def f():\n    from ..high import b\n",  # relative, inside a function
            "high/b.py": "from pkg.low.a import f\n",
            "stages/s.py": "from pkg.high import b\n",  # above components: not part of the graph
        },
    )
    graph = component_graph(package)
    assert graph == {"low": {"high"}, "high": {"low"}}
    assert find_cycle(graph) == ["high", "low", "high"]
    assert find_cycle({"low": set(), "high": {"low"}}) is None


def test_the_checker_finds_a_planted_layout_import(tmp_path):
    package = _package(
        tmp_path,
        {
            "paths.py": "class Layout: ...\n",
            "low/a.py": "def f():\n    from pkg.paths import Layout\n",
            "low/deep/b.py": "from ... import paths\n",
            "high/c.py": "import pkg.low.a\n",  # another component, not the layout
            "stages/s.py": "from pkg.paths import Layout\n",  # stages may
        },
    )
    assert layout_importers(package) == ["low/a.py", "low/deep/b.py"]
