"""Local hosts that booted but do not work (issue 10, "Faults"): silent SSH, a boot that dies
with a cause in the console, a reboot from inside, many hosts against the inotify limit."""

import os
import signal
import subprocess
import sys
import time

from stack.local import machines
from stack.local.plan import Step, make_plan, render_plan
from stack.state import Host

WANTED = {"h-db": ("db", None), "h-kong": ("kong", None)}
ADDRESSES = {"h-db": "10.9.0.10", "h-kong": "10.9.0.11"}
RECORDED = {
    name: Host(role, ADDRESSES[name], ADDRESSES[name], "root", extra={"local": {"pid": 1}})
    for name, (role, _) in WANTED.items()
}


def test_a_running_host_that_does_not_answer_ssh_is_restarted():
    steps = make_plan(WANTED, ADDRESSES, RECORDED, running={"h-db", "h-kong"}, silent={"h-kong"})
    assert steps == [Step("keep", "h-db", "db", "10.9.0.10"), Step("restart", "h-kong", "kong", "10.9.0.11")]
    assert render_plan(steps, []) == (
        "  h-db    (db, 10.9.0.10) running, unchanged\n"
        "~ restart h-kong  (kong, 10.9.0.11) running but not answering SSH\n"
        "Plan: 0 to create, 0 to start, 1 to restart, 0 to destroy, 1 unchanged."
    )


# What systemd 252 wrote to the console of a host whose boot hit the inotify limit, after an
# earlier good boot in the same (appended) log; colours as on a terminal.
CONSOLE = """\
systemd 252.36-1~deb12u1 running in system mode (+PAM +AUDIT ...)
Detected virtualization systemd-nspawn.
[  OK  ] Reached target \x1b[0;1;39mMulti-User System\x1b[0m.
Failed to start something unrelated in the earlier boot: Permission denied
systemd 252.36-1~deb12u1 running in system mode (+PAM +AUDIT ...)
Detected virtualization systemd-nspawn.
Detected architecture x86-64.
\x1b[0;1;31mFailed to create symlink /sys/fs/cgroup/net_cls: Read-only file system\x1b[0m
Failed to create control group inotify object: Too many open files
Failed to allocate manager object: Too many open files
[\x1b[0;1;31m!!!!!!\x1b[0m] Failed to allocate manager object.
Exiting PID 1...
"""


def test_the_boot_failure_quotes_its_first_cause_not_the_last_line(tmp_path, monkeypatch):
    monkeypatch.setattr(machines, "MACHINES", tmp_path)
    (tmp_path / "h-kong").mkdir()
    (tmp_path / "h-kong" / "console.log").write_text(CONSOLE)
    assert machines.console_cause("h-kong") == "Failed to create control group inotify object: Too many open files"


def test_without_a_failure_line_the_cause_is_the_last_line(tmp_path, monkeypatch):
    monkeypatch.setattr(machines, "MACHINES", tmp_path)
    (tmp_path / "h-db").mkdir()
    (tmp_path / "h-db" / "console.log").write_text("systemd 252 running in system mode\r\nExiting PID 1...\r\n")
    assert machines.console_cause("h-db") == "Exiting PID 1..."
    assert machines.console_cause("h-none") == "no console log"


def test_the_inotify_limit_is_raised_only_from_the_default_and_for_many_hosts():
    assert machines.inotify_instances_wanted(current=128, hosts=12) == 1024
    assert machines.inotify_instances_wanted(current=128, hosts=4) is None
    assert machines.inotify_instances_wanted(current=512, hosts=40) is None  # set by someone: left alone


def _fake_nspawn(tmp_path, body: str):
    script = tmp_path / "fake-nspawn"
    script.write_text(f"#!{sys.executable}\nimport os, signal, sys, time\n{body}")
    script.chmod(0o755)
    return str(script)


def test_the_supervisor_boots_the_host_again_after_a_reboot_from_inside(tmp_path):
    # exits 133 (systemd-nspawn's status when the container rebooted) twice, then 0 (powered off)
    fake = _fake_nspawn(
        tmp_path,
        (
            "runs = sys.argv[1] + '/runs'\n"
            "count = len(open(runs).read()) if os.path.exists(runs) else 0\n"
            "open(runs, 'a').write('x')\n"
            "sys.exit(133 if count < 2 else 0)\n"
        ),
    )
    completed = subprocess.run(machines.supervised([fake, str(tmp_path)]), timeout=30)
    assert completed.returncode == 0
    assert (tmp_path / "runs").read_text() == "xxx"


def test_the_supervisor_passes_sigterm_on_and_does_not_boot_again(tmp_path):
    fake = _fake_nspawn(
        tmp_path,
        (
            "signal.signal(signal.SIGTERM, lambda *a: (open(sys.argv[1] + '/stopped', 'w').write('yes'), sys.exit(0)))\n"
            "open(sys.argv[1] + '/up', 'w').write('yes')\n"
            "while True: time.sleep(0.1)\n"
        ),
    )
    process = subprocess.Popen(machines.supervised([fake, str(tmp_path), "--machine=h-sup"]))
    try:
        for _ in range(100):
            if (tmp_path / "up").exists():
                break
            time.sleep(0.1)
        assert machines.is_running("h-sup", process.pid)  # the recorded pid is the supervisor's
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert (tmp_path / "stopped").read_text() == "yes"
        assert not machines.is_running("h-sup", process.pid)
    finally:
        if process.poll() is None:
            process.kill()
