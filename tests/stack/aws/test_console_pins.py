"""Host keys known before first contact (moto): provision.py reads each new instance's keys from
its console output (injected per instance: moto's is made-up text), pins them under the instance
id, keeps them across a new public IP, and a host that offers another key is refused before
anything is sent, by pyinfra, ssh and the backup alike."""

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import paramiko
import pytest

from stack.host_keys import BEGIN_FINGERPRINTS, BEGIN_KEYS, END_FINGERPRINTS, END_KEYS, HostKey

ROOT = Path(__file__).resolve().parents[3]
NAMES = ["des-backend-a", "des-backend-b", "des-db", "des-kong"]


def ed25519(folder: Path, name: str) -> paramiko.Ed25519Key:
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.Ed25519Key(filename=str(path))


def as_host_key(key: paramiko.PKey) -> HostKey:
    return HostKey(key.get_name(), key.get_base64())


def console(keys: list[paramiko.PKey], host: str = "ip-172-31-22-11") -> str:
    """What an Ubuntu 24.04 instance's first boot puts on its console around cloud-init's block."""
    log = "<14>Dec  6 19:02:41 cloud-init: "
    lines = [
        "[    2.301923] systemd[1]: systemd 255.4-1ubuntu8.4 running in system mode (+PAM +AUDIT +SELINUX)",
        "[    7.954976] cloud-init[1975]: Cloud-init v. 24.4.1-0ubuntu0~24.04.1 running 'modules:final' at "
        "Sun, 06 Dec 2026 19:02:40 +0000. Up 7.90 seconds.",
        "ci-info: no authorized SSH keys fingerprints found for user ubuntu.",
        log + "#" * 61,
        log + BEGIN_FINGERPRINTS,
        *[f"{log}256 {as_host_key(key).fingerprint} root@{host} ({as_host_key(key).label})" for key in keys],
        log + END_FINGERPRINTS,
        log + "#" * 61,
        BEGIN_KEYS,
        *[f"{key.get_name()} {key.get_base64()} root@{host}" for key in keys],
        END_KEYS,
        "[    8.090254] cloud-init[1975]: Cloud-init v. 24.4.1-0ubuntu0~24.04.1 finished at Sun, 06 Dec 2026 "
        "19:02:41 +0000. Datasource DataSourceEc2Local.  Up 8.08 seconds",
    ]
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture
def keys(tmp_path):
    return {name: ed25519(tmp_path, name) for name in NAMES}


@pytest.fixture
def fast(aws, monkeypatch):
    """No real SSH waits on moto's made-up addresses; console polls without the 10 s pause; SSH
    restricted (no warning line on stderr)."""
    aws.configure(admin_cidr="203.0.113.7/32")
    monkeypatch.setattr("stack.aws.instances._ssh_answers", lambda address, port: True)
    monkeypatch.setattr("stack.aws.console.POLL_SECONDS", 0.01)


def known_hosts(aws) -> list[str]:
    return (aws.home / "ssh" / "known_hosts").read_text().splitlines()


def test_apply_waits_for_each_console_and_pins_its_keys_under_the_instance_id(aws, monkeypatch, keys, fast):
    def answer(name, read):
        # EC2 posts the output minutes after boot: nothing, then a boot still under way, then all of it
        if read == 1:
            return None
        text = console([keys[name]])
        return text[: text.index(BEGIN_KEYS) + 40] if read == 2 else text

    reads = aws.consoles(monkeypatch, answer)
    code, out, err = aws.run()
    assert code == 0, err
    assert reads == {name: 3 for name in NAMES}
    waiting = "  waiting for the SSH host keys in the console output of des-backend-a, des-backend-b, des-db, des-kong"
    assert re.search(rf"^{waiting} \(\d+ s\)$", out, re.M), out
    instances = aws.instances()
    for name in NAMES:
        assert f"  {name}: host keys pinned from its console ({as_host_key(keys[name]).described})" in out
    assert sorted(known_hosts(aws)) == sorted(
        f"{instances[name]['InstanceId']},{instances[name]['PublicIpAddress']} {as_host_key(keys[name]).line}"
        for name in NAMES
    )
    assert out.index("host keys pinned") < out.index("answers SSH")  # pinned before anything connects

    code, out, err = aws.run()  # pinned: the consoles are not read again
    assert code == 0 and reads == {name: 3 for name in NAMES}, err


def test_a_new_public_ip_keeps_the_pin_and_reads_no_console(aws, monkeypatch, keys, fast):
    reads = aws.consoles(monkeypatch, lambda name, read: console([keys[name]]))
    assert aws.run()[0] == 0
    db = aws.instances()["des-db"]["InstanceId"]
    moved = {"address": "198.51.100.77"}

    def new_address(parsed):  # Learner Lab's stop/start: the same instance, another public IP
        for reservation in parsed.get("Reservations", []):
            for raw in reservation["Instances"]:
                if raw["InstanceId"] == db:
                    raw["PublicIpAddress"] = moved["address"]

    aws.rewrite(monkeypatch, "DescribeInstances", new_address)
    code, out, err = aws.run()
    assert code == 0, err
    assert reads == {name: 1 for name in NAMES}
    assert f"{db},198.51.100.77 {as_host_key(keys['des-db']).line}" in known_hosts(aws)
    assert not any(line.startswith(f"{db},") and "198.51.100.77" not in line for line in known_hosts(aws))


def test_a_console_whose_key_is_not_its_printed_fingerprint_pins_nothing(aws, monkeypatch, keys, fast):
    def answer(name, read):
        text = console([keys[name]])
        if name == "des-db":  # the key line replaced, the fingerprint line left: not what the host printed
            text = text.replace(keys[name].get_base64(), keys["des-kong"].get_base64())
        return text

    aws.consoles(monkeypatch, answer)
    code, out, err = aws.run()
    db = aws.instances()["des-db"]["InstanceId"]
    assert code == 1
    assert err.startswith(
        f"error: des-db ({db}): its console output cannot be trusted (its ED25519 key has fingerprint "
        f"{as_host_key(keys['des-kong']).fingerprint} but the console printed {as_host_key(keys['des-db']).fingerprint}"
    ), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not any(line.startswith(db) for line in known_hosts(aws))


def test_a_console_that_never_shows_the_keys_is_one_line_and_nothing_connects(aws, monkeypatch, fast):
    monkeypatch.setattr("stack.aws.console.CONSOLE_TIMEOUT", 0.05)
    asked = []
    monkeypatch.setattr("stack.aws.instances._ssh_answers", lambda address, port: asked.append(address) or True)
    aws.consoles(monkeypatch, lambda name, read: "[    0.000000] Linux version 6.8.0-1021-aws\r\n")
    code, out, err = aws.run()
    assert code == 1
    assert err == (
        "error: the console output of des-backend-a, des-backend-b, des-db, des-kong showed no SSH host keys "
        "within 0 s: re-run python provision.py to keep waiting (nothing connects to a host before its keys "
        "are pinned)\n"
    )
    assert asked == []


def test_no_wait_says_the_keys_are_not_pinned_yet(aws):
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert (
        "  --no-wait: the SSH host keys of des-backend-a, des-backend-b, des-db, des-kong are not pinned yet; "
        "run python provision.py again before deploying (it reads them from the consoles)"
    ) in out


# A fake host at the recorded address: its own key, not the one its instance printed ---------------
class _Watched(paramiko.ServerInterface):
    """Records every authentication and channel request; would run any command it is asked to."""

    def __init__(self, seen: list):
        self.seen = seen

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        self.seen.append(f"auth {username}")
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        self.seen.append(f"channel {kind}")
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        self.seen.append(f"exec {command!r}")
        return True


@pytest.fixture
def impostor(tmp_path):
    """(port, what it saw) of an SSH server on 127.0.0.1 with a host key of its own."""
    host_key = ed25519(tmp_path, "impostor")
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []
    transports = []

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(connection)
            transport.add_server_key(host_key)
            transports.append(transport)
            try:
                transport.start_server(server=_Watched(seen))
            except (EOFError, paramiko.SSHException):  # the client hung up on seeing the key
                continue

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], seen, as_host_key(host_key)
    listener.close()
    for transport in transports:
        transport.close()


def test_a_host_whose_key_is_not_its_consoles_is_refused_before_anything_is_sent(
    aws, monkeypatch, keys, fast, impostor, tmp_path
):
    port, seen, offered = impostor
    aws.consoles(monkeypatch, lambda name, read: console([keys[name]]))

    def at_the_impostor(parsed):  # whoever answers des-db's recorded address
        for reservation in parsed.get("Reservations", []):
            for raw in reservation["Instances"]:
                if {"Key": "Name", "Value": "des-db"} in raw.get("Tags", []):
                    raw["PublicIpAddress"] = "127.0.0.1"

    aws.rewrite(monkeypatch, "DescribeInstances", at_the_impostor)
    monkeypatch.setattr("stack.aws.discover.SSH_PORT", port)
    assert aws.run()[0] == 0
    db = aws.instances()["des-db"]["InstanceId"]
    pinned = as_host_key(keys["des-db"])
    assert f"{db},[127.0.0.1]:{port} {pinned.line}" in known_hosts(aws)
    refused = (
        f"offered host key {offered.described}, not the one pinned in {aws.home / 'ssh' / 'known_hosts'} "
        f"({pinned.described}): refused, nothing was sent"
    )

    # the deploy: the real pyinfra CLI, as it is run
    deploy = subprocess.run(
        [str(Path(sys.executable).with_name("pyinfra")), "-y", "inventory.py", "deploy.py", "--limit", "des-db"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = deploy.stdout + deploy.stderr
    assert deploy.returncode != 0, output[-2000:]
    lines = [line for line in output.splitlines() if "offered host key" in line]
    assert len(lines) == 1 and f"des-db ({db}, 127.0.0.1) {refused}" in lines[0], output[-2000:]
    assert "Traceback" not in output and "accept" not in output.lower()

    # ssh (operate) and the backup, through OpenSSH
    code, out, err = aws.run("ssh", "des-db", "--", "true")
    assert (code, err.count("\n")) == (1, 1), err
    assert f"error: des-db (ubuntu@127.0.0.1:{port}) {refused}" in err, err
    code, out, err = aws.run("backup", str(tmp_path / "db.dump"))
    assert code == 1 and err.startswith(f"error: backup of des-db failed: des-db ({db}, 127.0.0.1) {refused}"), err
    assert not (tmp_path / "db.dump").exists()

    assert seen == []  # no login was tried, no command asked for: nothing reached the impostor
    assert known_hosts(aws).count(f"{db},[127.0.0.1]:{port} {pinned.line}") == 1  # and nothing was trusted
    assert offered.data not in (aws.home / "ssh" / "known_hosts").read_text()
