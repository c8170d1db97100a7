"""Every component's own facts and operations, one JSON case each (pyinfra-testing, as pyinfra tests its own).

Cases live in tests/tasks/<component>/fixtures/<module>.<name>/*.json, e.g.
kong/fixtures/operations.config_applied/: facts give the command's output and the parsed value;
operations give the facts they read and the exact commands (or the noop description) they must
produce. Whether a folder holds fact or operation cases follows from what it names.
"""

from importlib import import_module
from pathlib import Path

from pyinfra.api import FactBase
from pyinfra_testing.facts import make_fact_tests
from pyinfra_testing.operations import make_operation_tests

TASKS = Path(__file__).parent


def _cases():
    for folder in sorted(TASKS.glob("*/fixtures/*.*")):
        component = folder.parent.parent.name
        module, name = folder.name.rsplit(".", 1)
        target = getattr(import_module(f"tasks.{component}.{module}"), name)
        is_fact = isinstance(target, type) and issubclass(target, FactBase)
        yield component, folder, (make_fact_tests if is_fact else make_operation_tests)


for _component, _folder, _make in _cases():
    _test_name = f"Test_{_component}_{_folder.name.replace('.', '_')}"
    locals()[_test_name] = _make(f"tasks.{_component}", _folder.name, _folder)
