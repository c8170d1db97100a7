"""stack/local/console_keys.py: the first-boot script prints cloud-init's block, which the AWS
provider's parser reads back as the host's keys; the unit is enabled in the host's own layer."""

import os
import subprocess
import threading
import time

import pytest

from stack.errors import UserError
from stack.host_keys import console_host_keys
from stack.local import console_keys


def test_the_script_prints_what_the_aws_parser_reads_as_the_hosts_keys(tmp_path):
    ssh = tmp_path / "etc" / "ssh"
    ssh.mkdir(parents=True)
    for kind in ("ecdsa", "ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(ssh / f"ssh_host_{kind}_key")], check=True)
    script = console_keys.script_text().replace("/etc/ssh", str(ssh)).replace("/var/lib", str(tmp_path / "var/lib"))
    printed = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    lines = printed.splitlines()
    assert lines[0].startswith("<14>") and lines[0].endswith(" cloud-init: " + "#" * 61)
    keys = console_host_keys("[    1.2] systemd[1]: Started ssh.service\r\n" + printed.replace("\n", "\r\n"))
    on_disk = sorted(
        " ".join((ssh / name).read_text().split()[:2]) for name in os.listdir(ssh) if name.endswith(".pub")
    )
    assert sorted(key.line for key in keys) == on_disk
    assert (tmp_path / "var/lib/sprint2-local/host-keys-printed").exists()  # first boot only


def test_install_writes_the_unit_enabled_in_the_hosts_root(tmp_path):
    console_keys.install(tmp_path)
    console_keys.install(tmp_path)  # twice: the same
    unit = tmp_path / "etc/systemd/system" / console_keys.UNIT
    assert unit.read_text() == console_keys.unit_text()
    assert "TTYPath=/dev/console" in unit.read_text() and "ConditionPathExists=!" in unit.read_text()
    assert (
        os.readlink(tmp_path / "etc/systemd/system/multi-user.target.wants" / console_keys.UNIT)
        == f"../{console_keys.UNIT}"
    )
    assert os.stat(tmp_path / console_keys.SCRIPT.lstrip("/")).st_mode & 0o777 == 0o755


def test_keys_are_waited_for_until_the_block_is_complete(tmp_path, monkeypatch):
    monkeypatch.setattr(console_keys, "POLL_S", 0.01)
    log = tmp_path / "console.log"
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMSFrAi7WodGpvx4XLh5c6PuJRaptHJM5psjLUXoiLy9"
    log.write_text("systemd 252 running in system mode\r\n-----BEGIN SSH HOST KEY KEYS-----\r\n")

    def finish():
        time.sleep(0.1)
        with log.open("a") as handle:
            handle.write(f"{key} root@h-db\r\n-----END SSH HOST KEY KEYS-----\r\n")

    threading.Thread(target=finish).start()
    assert [found.line for found in console_keys.keys_from_console("h-db", log, wait_s=5)] == [key]
    with pytest.raises(UserError, match=r"^h-nothing printed no SSH host keys to its console within 0 s \(see "):
        console_keys.keys_from_console("h-nothing", tmp_path / "none.log", wait_s=0.05)
