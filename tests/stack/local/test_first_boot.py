import fcntl
import subprocess
import sys

import pytest

from stack.errors import UserError
from stack.local import first_boot


def test_a_host_gets_its_login_user_key_and_lock_time_as_data_only():
    assert first_boot.host_files("ubuntu", "ssh-ed25519 AAAA sprint2-stack\n", apt_hold_s=7) == {
        "/etc/sprint2-local/login-user": ("ubuntu\n", 0o644),
        "/etc/sprint2-local/authorized_keys": ("ssh-ed25519 AAAA sprint2-stack\n", 0o600),
        "/etc/sprint2-local/apt-hold-seconds": ("7\n", 0o644),
    }


def test_the_hold_is_20_s_unless_the_switch_names_other_whole_seconds():
    assert first_boot.apt_hold_seconds({}) == 20
    assert first_boot.apt_hold_seconds({"DEPLOY_LOCAL_APT_HOLD": ""}) == 20
    assert first_boot.apt_hold_seconds({"DEPLOY_LOCAL_APT_HOLD": "0"}) == 0
    assert first_boot.apt_hold_seconds({"DEPLOY_LOCAL_APT_HOLD": " 45 "}) == 45
    for wrong in ("-1", "1.5", "ten", "3601"):
        with pytest.raises(UserError, match=f"^DEPLOY_LOCAL_APT_HOLD='{wrong}': expected whole seconds from 0 to 3600"):
            first_boot.apt_hold_seconds({"DEPLOY_LOCAL_APT_HOLD": wrong})


def test_sshd_refuses_root_and_passwords():
    assert first_boot.sshd_config().splitlines()[1:] == ["PermitRootLogin no", "PasswordAuthentication no"]


def test_the_login_user_is_made_before_sshd_once_with_cloud_inits_sudo_line():
    unit = first_boot.user_unit()
    assert "Before=ssh.service\n" in unit and "ConditionPathExists=!/var/lib/sprint2-local/login-user-created\n" in unit
    script = first_boot.user_script()
    assert "printf '%s ALL=(ALL) NOPASSWD:ALL\\n' \"$user\" > /etc/sudoers.d/90-cloud-init-users.tmp" in script
    # checked by visudo before it replaces anything: a broken sudoers file would lock everyone out
    assert script.index("visudo -cq") < script.index("mv /etc/sudoers.d/90-cloud-init-users.tmp")


def test_the_first_boot_apt_run_holds_the_locks_as_apt_takes_them(tmp_path):
    """apt locks with fcntl: a lock taken with flock(2) would not stop it. The script, pointed at
    files of this test, must make a second fcntl lock fail while it sleeps."""
    locks = [tmp_path / "lists.lock", tmp_path / "frontend.lock"]
    script = first_boot.apt_script()
    script = script.replace(repr(first_boot.APT_LOCKS), repr(tuple(map(str, locks))))
    script = script.replace(f"{first_boot.CONFIG_DIR}/apt-hold-seconds", str(tmp_path / "seconds"))
    script = script.replace(first_boot.DONE_DIR, str(tmp_path / "done"))
    (tmp_path / "seconds").write_text("2\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert "holding dpkg's lock for 2 s" in holder.stdout.readline()
    for path in locks:
        with open(path, "a") as handle:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken = True
            except OSError:
                taken = False
        assert not taken, f"{path} was not locked"
    assert holder.wait(timeout=10) == 0
    assert (tmp_path / "done" / "apt-daily-done").exists()
    assert [path.read_text() for path in locks] == ["", ""]  # locked, never truncated or written
