"""The project's modules import each other without a circle: every import (also one inside a
function, which only defers the circle to the first call) points down a layering, so any module
can be read, tested and imported on its own. Read from the source with ast, nothing imported."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLACES = ("stack", "tasks")  # and the commands at the top: provision.py, inventory.py, deploy.py...


def project_files(root: Path) -> list[Path]:
    files = [path for place in PLACES for path in sorted((root / place).rglob("*.py"))]
    return files + sorted(root.glob("*.py"))


def module_file(root: Path, module: str) -> Path | None:
    """The file of `module` in this checkout (a module or a package), None when it is not ours."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(tree: ast.Module, package: str) -> set[str]:
    """Every module an import statement anywhere in the file runs, parent packages included
    (`import stack.aws.plan` runs stack/__init__.py and stack/aws/__init__.py first)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # `from stack import provider` imports the module stack.provider, if it is one
            names.update(f"{base}.{alias.name}" for alias in node.names)
    with_parents = set()
    for name in names:
        parts = name.split(".")
        with_parents.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    return with_parents


def import_graph(root: Path) -> dict[str, set[str]]:
    """file -> the files of this checkout it imports, as paths relative to `root`."""
    graph: dict[str, set[str]] = {}
    for path in project_files(root):
        relative = path.relative_to(root)
        package = ".".join(relative.parent.parts)  # what a relative import starts from
        targets = set()
        for module in imported_modules(ast.parse(path.read_text(), str(path)), package):
            found = module_file(root, module)
            if found is not None and found != path:
                targets.add(str(found.relative_to(root)))
        graph[str(relative)] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one file (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def one_loop(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest path from the component's first file back to itself, to name in a failure."""
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & set(component)):
            if target == start:
                return paths[node] + [start]
            if target not in paths:
                paths[target] = paths[node] + [target]
                queue.append(target)
    raise AssertionError(f"no loop through {start}")


def describe(graph: dict[str, set[str]]) -> list[str]:
    return [f"{len(part)} files in a circle, e.g. {' -> '.join(one_loop(graph, part))}" for part in circles(graph)]


def test_no_module_of_the_project_imports_itself_back():
    assert describe(import_graph(ROOT)) == []


def test_the_graph_holds_the_imports_inside_functions_too():
    graph = import_graph(ROOT)
    assert "stack/local/provider.py" in graph["stack/providers.py"]  # imported in _local()
    assert "stack/provider.py" in graph["stack/local/plan.py"]
    assert "stack/providers.py" in graph["provision.py"]


def test_a_circle_is_found_and_named(tmp_path):
    """The check can fail: a registry importing a provider that imports a helper of the
    registry's module (the shape stack/provider.py had) is one circle of three files."""
    (tmp_path / "stack" / "local").mkdir(parents=True)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "stack" / "__init__.py").write_text("")
    (tmp_path / "stack" / "local" / "__init__.py").write_text("")
    (tmp_path / "stack" / "provider.py").write_text(
        "def _local():\n    from stack.local.provider import LocalProvider\n    return LocalProvider()\n"
    )
    (tmp_path / "stack" / "local" / "provider.py").write_text("from stack.local import plan\n")
    (tmp_path / "stack" / "local" / "plan.py").write_text("from stack.provider import plan_summary\n")
    (tmp_path / "provision.py").write_text("from stack import provider\n")
    assert describe(import_graph(tmp_path)) == [
        "3 files in a circle, e.g. stack/local/plan.py -> stack/provider.py -> stack/local/provider.py "
        "-> stack/local/plan.py"
    ]
