"""Every package the code imports is declared: the runtime's in requirements.txt (what a user
installs), the tests' and tools' in requirements-dev.txt (which includes it)."""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = [ROOT / "stack", ROOT / "tasks", *ROOT.glob("*.py")]
# files/ runs on the hosts (in the app's own virtualenv), tests/testapp is the app itself.
DEVELOPMENT = [ROOT / "tests", ROOT / "bench"]
NOT_OURS = (ROOT / "tests" / "testapp",)
# Each one's other half, released with it: each boto3 release requires its own botocore release.
COMES_WITH = {"botocore": "boto3"}


def declared(requirements: Path) -> set[str]:
    names = set()
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= declared(requirements.parent / line[3:].strip())
        elif line:
            names.add(normalized(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0]))
    return names


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_files(places: list[Path]):
    for place in places:
        for path in [place] if place.is_file() else sorted(place.rglob("*.py")):
            if not any(path.is_relative_to(other) for other in NOT_OURS):
                yield path


def imported_distributions(places: list[Path]) -> dict[str, Path]:
    """Distribution name -> one file importing it, for every import that is neither the standard
    library nor a module of this checkout."""
    distributions = importlib.metadata.packages_distributions()
    found: dict[str, Path] = {}
    for path in python_files(places):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                ours = any((where / top).exists() or (where / f"{top}.py").exists() for where in (ROOT, path.parent))
                if top in sys.stdlib_module_names or ours:
                    continue
                for distribution in distributions.get(top, [f"{top} (not installed)"]):
                    found.setdefault(normalized(distribution), path)
    return found


def undeclared(places: list[Path], requirements: Path) -> list[str]:
    names = declared(requirements)
    return [
        f"{distribution} (imported by {path.relative_to(ROOT)})"
        for distribution, path in sorted(imported_distributions(places).items())
        if distribution not in names and COMES_WITH.get(distribution) not in names
    ]


def test_the_runtime_declares_what_it_imports():
    assert undeclared(RUNTIME, ROOT / "requirements.txt") == []


def test_the_tests_and_tools_declare_what_they_import():
    assert undeclared(RUNTIME + DEVELOPMENT, ROOT / "requirements-dev.txt") == []


def test_the_runtime_requirements_hold_no_test_tool():
    assert declared(ROOT / "requirements.txt").isdisjoint({"pytest", "moto", "pyinfra-testing", "ruff", "mypy"})


def test_the_checks_would_see_a_missing_declaration(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pyinfra==3.10.0\n")
    missing = undeclared([ROOT / "stack" / "operate" / "hosts.py"], requirements)
    assert missing == ["paramiko (imported by stack/operate/hosts.py)"]
