"""Every custom fact and operation, one JSON case per situation (pyinfra-testing, as pyinfra tests its own).

Cases live in tests/tasks/<component>/fixtures/<module>.<name>/*.json (e.g.
kong/fixtures/operations.config_applied/ tests tasks.kong.operations.config_applied), and those of
what the components share in tests/tasks/fixtures/ (e.g. packages.packages_installed/ tests
tasks.packages.packages_installed). Facts give the command's output and the parsed value;
operations give the facts they read and the exact commands (or the noop description) they must
produce. Whether a folder holds fact or operation cases follows from what it names.
A fact case with no output ([]) is only meaningful when process([]) equals the fact's default():
pyinfra does not call process() when the command prints nothing, it answers default().

Two keys pyinfra-testing does not know, for operation cases only:
- "executing": true runs the operation as during `pyinfra` (state.is_executing); pyinfra-testing's
  fake state always previews (is_executing is False), which is what a case without the key gets.
  Several operations only say in a preview what they check or fail on when the run reaches them.
- "host_data": the host's data (host.data), e.g. {"ssh_user": "admin"}; without it, none.
A fact without arguments is as true as its value, as on a real host (pyinfra-testing hands it over
wrapped in an object that is always true, so `if not cluster:` could never see "no cluster").
Fresh random salts (stack.secrets.new_verifier) are 16 zero bytes in operation cases, so a command
carrying a SCRAM verifier is known exactly, as pyinfra-testing fixes files' backup timestamps.
"""

from importlib import import_module
from pathlib import Path
from unittest.mock import patch

import pyinfra_testing.operations
from pyinfra.api import FactBase
from pyinfra_testing.facts import make_fact_tests
from pyinfra_testing.operations import make_operation_tests
from pyinfra_testing.util import FakeFact, create_host

TASKS = Path(__file__).parent


def _with_run_keys(case_class):
    """`case_class` (made by make_operation_tests) honouring "executing" and "host_data"."""
    run_case = case_class._test

    def _test(self, test_name, test_data):
        host_data = test_data.get("host_data", {})
        self.state.is_executing = test_data.get("executing", False)
        try:
            with (
                patch.object(
                    pyinfra_testing.operations,
                    "create_host",
                    lambda state, facts: create_host(state, facts=facts, data=dict(host_data)),
                ),
                patch.object(FakeFact, "__bool__", lambda fact: bool(fact.data), create=True),
                patch("stack.secrets.random.token_bytes", lambda size: bytes(size)),
            ):
                run_case(self, test_name, test_data)
        finally:
            self.state.is_executing = False

    case_class._test = _test
    return case_class


def _cases():
    """(package, folder) for each fixtures folder: a component's, or the shared one (package `tasks`)."""
    for folder in sorted(TASKS.glob("fixtures/*.*")):
        yield "tasks", folder
    for folder in sorted(TASKS.glob("*/fixtures/*.*")):
        yield f"tasks.{folder.parent.parent.name}", folder


for _package, _folder in _cases():
    _module, _name = _folder.name.rsplit(".", 1)
    _target = getattr(import_module(f"{_package}.{_module}"), _name)
    _test_name = f"Test_{_package.rsplit('.', 1)[-1]}_{_folder.name.replace('.', '_')}"
    if isinstance(_target, type) and issubclass(_target, FactBase):
        locals()[_test_name] = make_fact_tests(_package, _folder.name, _folder)
    else:
        locals()[_test_name] = _with_run_keys(make_operation_tests(_package, _folder.name, _folder))
