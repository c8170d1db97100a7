"""What the local provider does to this machine, on the session's real hosts: an ordinary user's
plan of them, and what a full destroy puts back (net.ipv4.ip_forward, the inotify limit).

Other sessions' hosts may run on this machine meanwhile, so the destroy's check asserts what is
true either way: our own hosts and bridge are gone before the check, the values stay while
anything is left and are put back exactly when nothing is (tests/stack/local/test_local_sysctls.py
proves the restore itself against a /proc/sys of its own). The hosts are made again at the end for
the modules after this.
"""

import shutil
from contextlib import contextmanager

import pytest

from stack.local import network, provider, sysctls
from tests.e2e.local_platform import PREFIX, SUBNET
from tests.stack.local.as_user import give, plan_as_user, readable_folder

pytestmark = pytest.mark.e2e


def test_an_ordinary_user_plans_the_running_hosts(platform):
    """Running hosts, bridge and NAT are root's: the plan shows the hosts as they run, and names
    the two things this user cannot check instead of planning a change."""
    with readable_folder() as readable:
        home = readable / "home"
        home.mkdir(mode=0o700)
        shutil.copy(platform.home / "state.json", home / "state.json")  # the key stays root's
        give(home)
        give(home / "state.json")
        result = plan_as_user(readable, home, platform.config_path.read_text())

    assert (result.returncode, result.stderr) == (0, "")
    width = max(len(name) for name in platform.hosts)
    running = [
        f"  {name:<{width}}  ({host['role']}, {host['private_ip']}) running, unchanged"
        for name, host in platform.hosts.items()
    ]
    key = platform.hosts[f"{PREFIX}-db"]["ssh_key"]
    bridge = network.bridge_name(PREFIX)
    assert sorted(result.stdout.splitlines()) == sorted(
        [
            *running,
            f"No changes: {len(running)} hosts running.",
            f"note: not checked: whether the running hosts answer SSH ({key} is not readable here)",
            f"note: not checked: the NAT rule of {bridge} for {SUBNET} (reading iptables needs root); "
            "apply adds it if missing",
            "(dry run: nothing was changed)",
        ]
    )


@contextmanager
def recorded_inotify_change():
    """What was recorded of the inotify limit before this destroy. When nothing was (it already
    was as the hosts need it), a record that changes nothing: found at its current value, set by
    us to another, so someone changed it since and a restore must leave it. Removed afterwards
    if still there (a destroy of another session may meanwhile have consumed it)."""
    name = sysctls.INOTIFY_INSTANCES
    with sysctls.locked():
        saved = sysctls.load()
        seeded = None
        if name not in saved:
            current = sysctls.read(name)
            assert current is not None
            seeded = {"before": current, "set": str(int(current) + 1)}
            sysctls.store({**saved, name: seeded})
    try:
        yield {**saved, name: seeded} if seeded else saved
    finally:
        with sysctls.locked():
            now = sysctls.load()
            if seeded and now.get(name) == seeded:
                sysctls.store({key: value for key, value in now.items() if key != name})


def test_a_full_destroy_puts_back_what_it_changed_when_no_host_is_left(platform):
    ours = set(platform.hosts) | {network.bridge_name(PREFIX)}
    try:
        with recorded_inotify_change() as saved:
            before = {name: sysctls.read(name) for name in saved}
            result = platform.down()
            after = {name: sysctls.read(name) for name in saved}
        assert result.returncode == 0, result.output
        lines = [line for line in result.stdout.splitlines() if line.startswith(("kept ", "no local host is left"))]
        assert len(lines) == 1, result.stdout
        if lines[0].startswith("kept "):  # another session's hosts or a bridge: they still need both
            still = lines[0].split(": still on this machine: ", 1)[1]
            assert not ours & set(still.replace(" and ", ", ").split(", ")), still
            assert after == before
        else:  # the last host of this machine: each value we set is back to the one found first
            restored = [name for name, values in saved.items() if before[name] == values["set"]]
            said = "restored " if restored else "nothing to restore"
            assert lines[0].startswith(f"no local host is left on this machine: {said}"), lines[0]
            for name, values in saved.items():
                if before[name] == values["set"]:
                    assert after[name] == values["before"]
                else:
                    assert after[name] == before[name]
                    assert f"left {name} at {before[name]} (set to {values['set']} by us, changed since)" in lines[0]
        assert not ours & set(provider._still_here())
    finally:
        platform._deployed = None
        platform.up()
    assert sysctls.read(sysctls.IP_FORWARD) == "1"
