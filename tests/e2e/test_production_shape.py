"""The local hosts are shaped like the EC2 Ubuntu hosts, and the deploy copes with what Ubuntu
Server does on its own: the login path (a normal user with passwordless sudo, root refused),
dpkg's lock held after the first boot (unattended-upgrades), needrestart after apt installs.
"""

import re
import subprocess
import time

import pytest

from stack.local import first_boot
from tasks.packages import install_command

pytestmark = pytest.mark.e2e


def _login(platform, name: str, user: str, command: str) -> subprocess.CompletedProcess:
    argv = platform.ssh_argv(name, command, as_root=False)
    argv[-2] = f"{user}@{platform.address(name)}"
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def test_every_host_refuses_root_and_lets_the_login_user_sudo_without_a_password(platform):
    assert {host["ssh_user"] for host in platform.hosts.values()} == {"ubuntu"}
    for name in platform.hosts:
        root = _login(platform, name, "root", "true")
        assert root.returncode == 255 and "Permission denied" in root.stderr, (name, root.stderr)
        ubuntu = _login(platform, name, "ubuntu", "id -un && sudo -n id -un")
        assert (ubuntu.returncode, ubuntu.stdout.split()) == (0, ["ubuntu", "root"]), (name, ubuntu.stderr)


def _lock_window(ssh, name) -> tuple[float, float]:
    """When the first-boot apt run held dpkg's lock on `name` (from its journal)."""
    code, out = ssh(name, f"journalctl -b -u {first_boot.APT_UNIT} -o cat --no-pager")
    held = re.search(r"holding dpkg's lock for \d+ s at ([\d.]+)", out)
    released = re.search(r"released dpkg's lock at ([\d.]+)", out)
    assert held and released, f"{name}: the first-boot apt run did not hold and release the lock:\n{out}"
    return float(held.group(1)), float(released.group(1))


def _apt_starts(ssh, name) -> list[float]:
    """When each apt install of this boot began (apt's own history, as Unix times)."""
    code, out = ssh(
        name,
        "grep '^Start-Date:' /var/log/apt/history.log | cut -d' ' -f2- | "
        'while read -r when; do date -d "$when" +%s; done',
    )
    return [float(line) for line in out.split()]


def test_a_deploy_started_while_dpkg_is_locked_at_first_boot_waits_and_converges(
    platform, deployed, rewrite_config, ssh, run_deploy
):
    """A new backend is deployed at once after it boots, while its first-boot apt run still
    holds dpkg's lock: the deploy's installs wait for it instead of failing, then converge."""
    c = f"{platform.prefix}-backend-c"
    assert rewrite_config(backends=["a", "b", "c"]).returncode == 0
    try:
        started = time.time()
        result = run_deploy("--limit", c, "--limit", "db")
        held, released = _lock_window(ssh, c)
        assert started < released, f"{c}: dpkg's lock was free before the deploy began: nothing was shown"
        starts = _apt_starts(ssh, c)
        assert result.returncode == 0, result.output
        assert starts, f"{c}: the deploy installed nothing"
        # apt's history has whole seconds: the install began no earlier than the lock's release.
        assert min(starts) >= int(released), (held, released, starts)
        assert run_deploy("--limit", c).changed == {}
    finally:
        rewrite_config()
        run_deploy("--limit", "db")  # pg_hba.conf without backend c again


def _main_pids(ssh, name, units) -> dict[str, str]:
    code, out = ssh(name, f"systemctl show -p Id -p MainPID {' '.join(units)}")
    blocks = [dict(line.split("=", 1) for line in block.splitlines()) for block in out.strip().split("\n\n")]
    pids = {block["Id"]: block["MainPID"] for block in blocks}
    assert set(pids) == set(units) and "0" not in pids.values(), f"{name}: {out}"
    return pids


# Replaces the C library's file with a copy (a new inode): every running service now maps a
# deleted file, exactly what needrestart looks for after a library upgrade.
REPLACE_LIBC = 'lib=$(readlink -f /lib/x86_64-linux-gnu/libc.so.6) && cp -a "$lib" "$lib.new" && mv "$lib.new" "$lib"'


def test_an_apt_install_during_a_deploy_restarts_no_service(platform, deployed, ssh, run_deploy):
    """needrestart (automatic, as Ubuntu's apt without a terminal) would restart every service that
    maps a replaced library after any install: the deploy's own installs must restart none."""
    db, kong = platform.names("db")[0], platform.names("kong")[0]
    backend = platform.names("backend")[0]
    # Converged first: what an earlier test left changed (a setting, a release) restarts by design.
    converged = run_deploy("--limit", backend)
    assert converged.returncode == 0, converged.output[-3000:]
    code, out = ssh(db, "systemctl list-units --plain --no-legend 'postgresql@*' | cut -d' ' -f1")
    services = {db: out.split()[:1], backend: ["sprint2-app.service"], kong: ["docker.service"]}
    before = {name: _main_pids(ssh, name, units) for name, units in services.items()}
    for name, units in services.items():
        code, out = ssh(name, f"{REPLACE_LIBC} && needrestart -b -r l")
        listed = set(re.findall(r"NEEDRESTART-SVC: (\S+)", out))
        assert set(units) <= listed, f"{name}: needrestart would not restart {units}, so this proves nothing:\n{out}"

    # One install through the deploy itself (logrotate, which it manages on the backends), and
    # the deploy's install command on each host for a package it does not have.
    code, out = ssh(backend, "DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get remove -y -q logrotate")
    assert code == 0, out
    result = run_deploy("--limit", backend)
    # The one apt call per host (deploy.py) installs it, before the backend's own steps.
    assert result.returncode == 0 and "Ensure each role's packages are installed, on every host at once" in str(
        result.changed
    ), result.output
    for name in services:
        code, out = ssh(name, install_command(["tree"]))
        assert code == 0 and "needrestart is suspended" in out, out

    after = {name: _main_pids(ssh, name, units) for name, units in services.items()}
    assert after == before
