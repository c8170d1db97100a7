"""tasks/kong.py's own facts and operations, one JSON case each (pyinfra-testing, as pyinfra tests its own).

Cases live in tests/tasks/kong_fixtures/{facts,operations}/<module>.<name>/*.json: facts give the
command's output and the parsed value; operations give the facts they read and the exact commands
(or the noop description) they must produce.
"""

from pathlib import Path

from pyinfra_testing.facts import make_fact_tests
from pyinfra_testing.operations import make_operation_tests

FIXTURES = Path(__file__).parent / "kong_fixtures"

for _kind, _make in (("facts", make_fact_tests), ("operations", make_operation_tests)):
    for _path in sorted(folder.name for folder in (FIXTURES / _kind).iterdir() if folder.is_dir()):
        locals()[f"Test_{_kind}_{_path.replace('.', '_')}"] = _make("tasks", _path, FIXTURES / _kind / _path)
