"""What the local provider changes on this machine comes back after the last host: the decisions
by exact output, then the real change/restore code against a /proc/sys and a saved file of its
own (the real ones are this machine's, shared with every other project and test session)."""

import json

import pytest

from stack.local import sysctls
from stack.local.sysctls import INOTIFY_INSTANCES, IP_FORWARD


def test_the_value_found_before_the_first_change_is_the_one_kept():
    saved = sysctls.with_change({}, IP_FORWARD, "0", "1")
    assert saved == {IP_FORWARD: {"before": "0", "set": "1"}}
    # someone put it back meanwhile and a later apply sets it again: 0 is still what we found first
    assert sysctls.with_change(saved, IP_FORWARD, "0", "1") == saved
    assert sysctls.with_change(saved, INOTIFY_INSTANCES, "128", "1024") == {
        IP_FORWARD: {"before": "0", "set": "1"},
        INOTIFY_INSTANCES: {"before": "128", "set": "1024"},
    }


def test_only_a_value_still_ours_is_put_back():
    saved = {IP_FORWARD: {"before": "0", "set": "1"}, INOTIFY_INSTANCES: {"before": "128", "set": "1024"}}
    assert sysctls.restorations(saved, {IP_FORWARD: "1", INOTIFY_INSTANCES: "1024"}) == (
        {IP_FORWARD: "0", INOTIFY_INSTANCES: "128"},
        {},
    )
    assert sysctls.restorations(saved, {IP_FORWARD: "1", INOTIFY_INSTANCES: "4096"}) == (
        {IP_FORWARD: "0"},
        {INOTIFY_INSTANCES: "4096"},
    )


def test_the_lines_a_destroy_prints():
    saved = {IP_FORWARD: {"before": "0", "set": "1"}, INOTIFY_INSTANCES: {"before": "128", "set": "1024"}}
    assert sysctls.restore_line({IP_FORWARD: "0", INOTIFY_INSTANCES: "128"}, {}, saved) == (
        "no local host is left on this machine: restored fs.inotify.max_user_instances to 128, net.ipv4.ip_forward to 0"
    )
    assert sysctls.restore_line({IP_FORWARD: "0"}, {INOTIFY_INSTANCES: "4096"}, saved) == (
        "no local host is left on this machine: restored net.ipv4.ip_forward to 0; "
        "left fs.inotify.max_user_instances at 4096 (set to 1024 by us, changed since)"
    )
    assert sysctls.kept_line(saved, ["h2-db", "h2-kong", "x-db", "br-h2"]) == (
        "kept fs.inotify.max_user_instances=1024 (was 128), net.ipv4.ip_forward=1 (was 0): "
        "still on this machine: h2-db, h2-kong, x-db and 1 more"
    )


@pytest.fixture
def machine(tmp_path):
    """A /proc/sys with Linux's defaults and the place of the saved values."""
    proc = tmp_path / "proc" / "sys"
    for name, value in ((IP_FORWARD, "0"), (INOTIFY_INSTANCES, "128")):
        sysctls.proc_file(name, proc).parent.mkdir(parents=True, exist_ok=True)
        sysctls.proc_file(name, proc).write_text(f"{value}\n")
    return proc, tmp_path / "var" / "sysctls.json"


def values(proc):
    return {name: sysctls.read(name, proc) for name in (IP_FORWARD, INOTIFY_INSTANCES)}


def test_two_projects_then_the_last_destroy_puts_both_back(machine):
    proc, saved = machine
    hosts = {"a": ["a-db", "br-a"], "b": []}

    def still_here():
        return [name for names in hosts.values() for name in names]

    # project a: its bridge, forwarding, then enough inotify instances for many hosts
    assert sysctls.change(IP_FORWARD, "1", saved, proc) == "0"
    assert sysctls.change(INOTIFY_INSTANCES, "1024", saved, proc) == "128"
    # project b finds both set: nothing changes, nothing new is recorded
    hosts["b"] = ["b-db", "br-b"]
    assert sysctls.change(IP_FORWARD, "1", saved, proc) is None
    assert json.loads(saved.read_text()) == {
        IP_FORWARD: {"before": "0", "set": "1"},
        INOTIFY_INSTANCES: {"before": "128", "set": "1024"},
    }

    hosts["a"] = []  # a destroyed: b's hosts still need both
    assert sysctls.restore_after_last_host(still_here, saved, proc) == (
        "kept fs.inotify.max_user_instances=1024 (was 128), net.ipv4.ip_forward=1 (was 0): "
        "still on this machine: b-db, br-b"
    )
    assert values(proc) == {IP_FORWARD: "1", INOTIFY_INSTANCES: "1024"}

    hosts["b"] = []  # the last one
    assert sysctls.restore_after_last_host(still_here, saved, proc) == (
        "no local host is left on this machine: restored fs.inotify.max_user_instances to 128, net.ipv4.ip_forward to 0"
    )
    assert values(proc) == {IP_FORWARD: "0", INOTIFY_INSTANCES: "128"}
    assert not saved.exists()
    # a later destroy has nothing recorded: says nothing, touches nothing
    assert sysctls.restore_after_last_host(still_here, saved, proc) is None
    assert values(proc) == {IP_FORWARD: "0", INOTIFY_INSTANCES: "128"}


def test_a_value_changed_by_someone_else_since_is_theirs(machine):
    proc, saved = machine
    sysctls.change(IP_FORWARD, "1", saved, proc)
    sysctls.change(INOTIFY_INSTANCES, "1024", saved, proc)
    sysctls.proc_file(INOTIFY_INSTANCES, proc).write_text("8192\n")  # an operator's own sysctl -w
    assert sysctls.restore_after_last_host(list, saved, proc) == (
        "no local host is left on this machine: restored net.ipv4.ip_forward to 0; "
        "left fs.inotify.max_user_instances at 8192 (set to 1024 by us, changed since)"
    )
    assert values(proc) == {IP_FORWARD: "0", INOTIFY_INSTANCES: "8192"}


def test_a_value_already_as_wanted_is_neither_changed_nor_recorded(machine):
    """E.g. Docker turned forwarding on before us: putting it back to 0 later would break it."""
    proc, saved = machine
    sysctls.proc_file(IP_FORWARD, proc).write_text("1\n")
    assert sysctls.change(IP_FORWARD, "1", saved, proc) is None
    assert not saved.exists()
    assert sysctls.restore_after_last_host(list, saved, proc) is None
    assert values(proc)[IP_FORWARD] == "1"
