"""Destructive changes go ahead only on --yes or a typed 'yes', and never silently without a terminal."""

import io

import pytest

from stack.confirm import confirm
from stack.errors import UserError


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_yes_flag_approves_without_asking(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert confirm("terminate 2 instances", yes=True) is True


def test_no_terminal_and_no_flag_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    with pytest.raises(UserError, match=r"^refusing to terminate 2 instances without confirmation: re-run with --yes$"):
        confirm("terminate 2 instances", yes=False)


@pytest.mark.parametrize(
    "typed, approved", [("yes\n", True), (" yes \n", True), ("y\n", False), ("YES\n", False), ("\n", False)]
)
def test_only_a_typed_yes_approves(monkeypatch, capsys, typed, approved):
    monkeypatch.setattr("sys.stdin", Terminal(typed))
    assert confirm("terminate 2 instances", yes=False) is approved
    assert "Do you want to terminate 2 instances? Only 'yes' will be accepted:" in capsys.readouterr().out
