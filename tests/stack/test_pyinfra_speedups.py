"""stack/pyinfra_speedups.py: pyinfra computes the same operation order and global arguments with
it as without, and no longer reads source files to do so."""

import inspect

import pytest
from pyinfra.api import Config, Inventory, State, arguments, facts, util

from stack import pyinfra_speedups


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
