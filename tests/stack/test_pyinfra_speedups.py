"""stack/pyinfra_speedups.py: pyinfra computes the same operation order and global arguments with
it as without, and no longer reads source files to do so."""

import inspect
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State, arguments, facts, util

from stack import pyinfra_speedups
from tests.tasks.backend import test_backend_deploy as backend

ROOT = Path(__file__).resolve().parents[2]
# The backend tests' controller keeps the locks of their commits (an autouse fixture there).
kept_locks = backend.kept_locks


@pytest.fixture
def pyinfra_names(monkeypatch):
    """Let each test install the speedups; pyinfra's own names come back afterwards."""
    for module, name in ((util, "stack"), (util, "getframeinfo")):
        monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(arguments, "all_global_arguments", arguments.all_global_arguments)
    monkeypatch.setattr(facts, "all_global_arguments", facts.all_global_arguments)


def _state(deploy_file: str | None) -> State:
    state = State(Inventory((["somehost"], {})), Config())
    state.current_deploy_filename = deploy_file
    return state


def _order_from(state: State, depth: int) -> list[int]:
    """The order pyinfra gives an operation called `depth` nested calls below here."""
    if depth:
        return _order_from(state, depth - 1)
    return util.get_operation_order_from_stack(state)


@pytest.mark.parametrize("deploy_file", [None, __file__])
def test_the_operation_order_is_the_same_and_reads_no_source(pyinfra_names, monkeypatch, deploy_file):
    state = _state(deploy_file)

    def no_source_reads(*args, **kwargs):
        raise AssertionError("source read for an operation's order")

    orders = []
    for speedups in (False, True):
        if speedups:
            assert pyinfra_speedups.apply() == [
                "operation order without source reads",
                "global arguments evaluated once",
            ]
            monkeypatch.setattr(inspect, "findsource", no_source_reads)
        orders.append(_order_from(state, 3))  # from the same line both times
    before, after = orders
    assert after == before
    assert len(after) > 3  # the nested calls' own lines are in it


def test_global_arguments_are_evaluated_once_and_unchanged(pyinfra_names, monkeypatch):
    before = arguments.all_global_arguments()
    pyinfra_speedups.apply()
    assert arguments.all_global_arguments() == before  # evaluated here, the first time
    calls = []
    original = arguments.get_type_hints
    monkeypatch.setattr(arguments, "get_type_hints", lambda *a, **k: calls.append(a) or original(*a, **k))

    assert arguments.all_global_arguments() == before
    assert facts.all_global_arguments() == before
    assert calls == []  # kept from the first call


def test_a_pyinfra_without_the_names_is_left_as_it_is(pyinfra_names, monkeypatch):
    monkeypatch.delattr(util, "getframeinfo")
    monkeypatch.delattr(arguments, "all_global_arguments")

    assert pyinfra_speedups.apply() == []
    assert util.stack is inspect.stack


def test_another_pyinfra_version_is_left_as_it_is_even_with_the_same_names(pyinfra_names, monkeypatch):
    monkeypatch.setattr(pyinfra_speedups, "pyinfra_version", lambda: "3.10.1")
    assert pyinfra_speedups.apply() == []
    assert util.stack is inspect.stack and util.getframeinfo is inspect.getframeinfo
    assert not hasattr(arguments.all_global_arguments, "cache_info")


def test_the_version_checked_is_the_one_requirements_pin():
    pinned = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("pyinfra==")]
    assert pinned == [f"pyinfra=={pyinfra_speedups.CHECKED}"]
    assert pyinfra_speedups.pyinfra_version() == pyinfra_speedups.CHECKED


def _backend_deploy(settings, facts) -> list[tuple]:
    """The real backend deploy on the fake host: each operation's name, order, and commands."""
    run = backend.deploy(facts, settings)
    return [(op.full_name, op.commands, sorted(op.uploads)) for op in run.ops]


@pytest.mark.parametrize("shape", ["fresh", "converged", "new commit"])
def test_the_real_deploy_runs_the_same_operations_in_the_same_order_with_them(pyinfra_names, monkeypatch, shape):
    settings = backend.base()
    facts = {
        "fresh": lambda: backend.host_facts(
            settings, installed=False, commit=None, remote=backend.NEW, populated=False
        ),
        "converged": lambda: backend.host_facts(settings),
        "new commit": lambda: backend.host_facts(settings, remote=backend.NEW),
    }[shape]
    without = _backend_deploy(settings, facts())
    assert pyinfra_speedups.apply() != []

    def no_source_reads(*args, **kwargs):
        raise AssertionError("source read for an operation's order")

    monkeypatch.setattr(inspect, "findsource", no_source_reads)
    with_them = _backend_deploy(settings, facts())
    assert [name for name, *_ in with_them] == [name for name, *_ in without]
    assert with_them == without


@pytest.mark.parametrize("version", ["3.11.0", "0.0.0"])
def test_with_a_fake_pyinfra_version_the_deploy_still_works_without_them(pyinfra_names, monkeypatch, version):
    monkeypatch.setattr(pyinfra_speedups, "pyinfra_version", lambda: version)
    assert pyinfra_speedups.apply() == []
    settings = backend.base()
    run = backend.deploy(backend.host_facts(settings, remote=backend.NEW), settings)
    assert backend.SWITCH_A in run.changed and run.op(backend.BUILD).commands
