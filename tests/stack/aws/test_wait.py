"""Waiting for SSH, against listeners on loopback (never against moto's made-up addresses)."""

import socket
import threading

import pytest

from stack.aws import instances
from stack.errors import UserError


def listener(banner: bytes | None):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            if banner:
                connection.sendall(banner)
            connection.close()

    threading.Thread(target=answer, daemon=True).start()
    return server


def test_waits_until_each_host_shows_an_ssh_banner(monkeypatch):
    monkeypatch.setattr(instances, "POLL_SECONDS", 0.01)
    ssh, web = listener(b"SSH-2.0-OpenSSH_9.6\r\n"), listener(b"HTTP/1.1 400 Bad Request\r\n")
    lines = []
    instances.wait_for_ssh({"des-db": ("127.0.0.1", ssh.getsockname()[1])}, lines.append, timeout=5)
    assert lines == ["  des-db (127.0.0.1) answers SSH after 0 s"]
    with pytest.raises(UserError, match="des-kong did not answer SSH within 0 s: check that admin_cidr matches"):
        instances.wait_for_ssh({"des-kong": ("127.0.0.1", web.getsockname()[1])}, lines.append, timeout=0.05)
    assert "  waiting for SSH: des-kong (0 s)" in lines
    ssh.close()
    web.close()
