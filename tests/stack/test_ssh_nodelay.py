"""stack/ssh_nodelay.py on real SSH connections: a small paramiko SSH server on loopback (no sshd
needed), reached by pyinfra's own ssh connector, through its API and through the real CLI."""

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paramiko
import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all

from stack.settings import PROJECT_ROOT
from stack.ssh_nodelay import SWITCH, connect_kwargs, set_nodelay
from stack.state import Host, save_state
from stack.state import State as Recorded


class _Server(paramiko.ServerInterface):
    """Accepts one public key; answers every exec request with `ran <command>` and status 0."""

    def __init__(self, key: paramiko.PKey):
        self.key = key

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL if key == self.key else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        def answer():
            # Only once the client sent EOF of stdin, which it does after reading this request's
            # reply: closing earlier would race paramiko's reply (the client sees "Channel closed").
            deadline = time.monotonic() + 10
            while not channel.eof_received and time.monotonic() < deadline:
                time.sleep(0.002)
            channel.sendall(b"ran " + command + b"\n")
            channel.send_exit_status(0)
            channel.close()

        threading.Thread(target=answer, daemon=True).start()
        return True


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(port, client key file) of an SSH server on 127.0.0.1 for this module."""
    folder = tmp_path_factory.mktemp("ssh")
    client_key = paramiko.ECDSAKey.generate()
    client_key.write_private_key_file(str(folder / "id_ecdsa"))
    host_key = paramiko.ECDSAKey.generate()
    (folder / "host_key.pub").write_text(f"{host_key.get_name()} {host_key.get_base64()}\n")
    listener = socket.create_server(("127.0.0.1", 0))
    transports = []

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(connection)
            transport.add_server_key(host_key)
            transport.start_server(server=_Server(paramiko.ECDSAKey(data=client_key.asbytes())))
            transports.append(transport)

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], folder / "id_ecdsa"
    listener.close()
    for transport in transports:
        transport.close()


def _connected_host(server, tmp_path, extra: dict):
    port, key = server
    data = {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": port,
        "ssh_user": "root",
        "ssh_key": str(key),
        "ssh_known_hosts_file": str(tmp_path / "known_hosts"),
        **extra,
    }
    inventory = Inventory(([("loop", data)], {}))
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("loop")
    assert host.connected
    return state, host


def _nodelay(host) -> int:
    return host.connector.client.get_transport().sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_connected_host_has_nodelay_on_its_socket_and_runs_commands(server, tmp_path, monkeypatch):
    monkeypatch.delenv(SWITCH, raising=False)
    state, host = _connected_host(server, tmp_path, connect_kwargs())
    try:
        assert _nodelay(host) != 0
        ok, output = host.run_shell_command("echo hi")
        assert ok and output.stdout == "ran sh -c 'echo hi'", output.stdout
    finally:
        disconnect_all(state)


def test_without_it_nagle_is_on(server, tmp_path, monkeypatch):
    """The control, and the switch: if pyinfra or paramiko ever set it themselves, this fails and
    stack/ssh_nodelay.py can go."""
    monkeypatch.setenv(SWITCH, "0")
    assert connect_kwargs() == {}
    state, host = _connected_host(server, tmp_path, connect_kwargs())
    try:
        assert _nodelay(host) == 0
    finally:
        disconnect_all(state)


def test_sockets_that_are_not_tcp_are_left_alone():
    left, right = socket.socketpair()
    with left, right:
        assert set_nodelay(left) is False and set_nodelay(object()) is False


def test_the_project_inventory_sets_it_on_a_real_pyinfra_run(server, tmp_path, monkeypatch):
    """The real CLI with inventory.py, as every deploy runs: the option is set before the handshake."""
    port, key = server
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEPLOY_CONFIG", str(tmp_path / "config.yml"))
    monkeypatch.delenv(SWITCH, raising=False)
    (tmp_path / "config.yml").write_text("project_prefix: des\n")
    state = Recorded("aws", "des", "us-east-1")
    state.hosts["des-db"] = Host("db", "10.0.0.4", "127.0.0.1", "root", ssh_key=str(key), ssh_port=port)
    save_state(state)
    # provision.py pins every host's key before the first deploy (nothing is trusted on first use)
    host_key = (key.parent / "host_key.pub").read_text()
    (tmp_path / "home" / "ssh").mkdir(exist_ok=True)
    (tmp_path / "home" / "ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}")
    pyinfra = Path(sys.executable).with_name("pyinfra")
    result = subprocess.run(
        [str(pyinfra), "-y", "--debug-all", "inventory.py", "exec", "--", "true"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert "TCP_NODELAY set on the SSH socket to 127.0.0.1" in output, output[-2000:]
