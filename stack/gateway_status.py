"""python provision.py status: Kong's own view of the backends, read through SSH.

The admin API listens on the Kong host's 127.0.0.1 only, so this opens an SSH connection with the
state's key and asks sshd for a direct TCP channel to 127.0.0.1:<admin_port> (what `ssh -L` does).
Nothing runs on the host and nothing is exposed. Exit status: 0 when every target is HEALTHY,
1 otherwise (or on an error, which is one line).
"""

import json
import logging
import shlex
import socket
from pathlib import Path

import paramiko

from stack.errors import UserError
from stack.render.kong import UPSTREAM
from stack.settings import Settings
from stack.state import known_hosts_file, load_state

CONNECT_TIMEOUT_S = 10
# paramiko logs refused channels itself; the one-line UserError below says it better.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

PATHS = {"health": f"/upstreams/{UPSTREAM}/health", "services": "/services", "plugins": "/plugins"}


def kong_host(state: dict | None) -> tuple[str, dict]:
    if not state or not state.get("hosts"):
        raise UserError("no hosts recorded yet: run python provision.py first")
    for name, host in sorted(state["hosts"].items()):
        if host["role"] == "kong":
            return name, host
    raise UserError("the state records no kong host: run python provision.py to create it")


def format_status(name: str, health: dict, services: dict, plugins: dict) -> tuple[list[str], bool]:
    """The report's lines and whether every target is HEALTHY (pure: tested without a host)."""
    targets = health.get("data", [])
    lines = [f"Kong on {name}: upstream {UPSTREAM}"]
    if not targets:
        lines.append("  (no targets: add backends and deploy)")
    width = max((len(target["target"]) for target in targets), default=0)
    for target in targets:
        lines.append(f"  {target['target']:<{width}}  {target.get('health', 'UNKNOWN')}"
                     f"  (weight {target.get('weight', '?')})")
    for service in services.get("data", []):
        lines.append(
            f"service {service.get('name')}: {service.get('protocol')}://{service.get('host')}, "
            f"retries {service.get('retries')}, timeouts connect/read/write "
            f"{service.get('connect_timeout')}/{service.get('read_timeout')}/{service.get('write_timeout')} ms")
    described = [f"{plugin.get('name')}{'' if plugin.get('enabled', True) else ' (disabled)'}"
                 for plugin in plugins.get("data", [])]
    lines.append(f"plugins: {', '.join(sorted(described)) or 'none'}")
    healthy = bool(targets) and all(target.get("health") == "HEALTHY" for target in targets)
    return lines, healthy


class _UnknownHost(Exception):
    pass


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    """StrictHostKeyChecking=yes: only the keys in the project's known_hosts (the deploy records them)."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHost(hostname)


def _connect(name: str, host: dict) -> paramiko.SSHClient:
    address, port, user = host.get("public_ip") or host["private_ip"], host.get("ssh_port", 22), host["ssh_user"]
    entry = address if port == 22 else f"[{address}]:{port}"  # how known_hosts names it
    client = paramiko.SSHClient()
    known_hosts = known_hosts_file()
    if known_hosts.exists():
        client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(_RejectUnknown())
    key = host.get("ssh_key")
    try:
        client.connect(address, port=port, username=user, key_filename=str(Path(key).expanduser()) if key else None,
                       timeout=CONNECT_TIMEOUT_S, banner_timeout=CONNECT_TIMEOUT_S, auth_timeout=CONNECT_TIMEOUT_S,
                       allow_agent=not key, look_for_keys=not key)
    except _UnknownHost:
        client.close()
        raise UserError(f"{name} ({entry}) has no host key in {known_hosts}: run the deploy first "
                        "(pyinfra inventory.py deploy.py records it)") from None
    except paramiko.BadHostKeyException:
        client.close()
        raise UserError(f"the SSH host key of {name} ({entry}) is not the one in {known_hosts}: if the host was "
                        f"re-created, remove the old key with ssh-keygen -R {shlex.quote(entry)} -f "
                        f"{shlex.quote(str(known_hosts))} and run the deploy (it records the new key)") from None
    except (OSError, paramiko.SSHException) as problem:
        client.close()
        reason = str(problem) or type(problem).__name__
        raise UserError(f"cannot reach {name} over SSH at {user}@{address}:{port} ({reason})") from None
    return client


def _get(client: paramiko.SSHClient, name: str, admin_port: int, path: str) -> dict:
    try:
        channel = client.get_transport().open_channel(
            "direct-tcpip", ("127.0.0.1", admin_port), ("127.0.0.1", 0), timeout=CONNECT_TIMEOUT_S)
    except (OSError, paramiko.SSHException) as problem:
        reason = (getattr(problem, "text", None) or str(problem) or "refused").lower()
        raise UserError(
            f"Kong's admin API does not answer on {name} 127.0.0.1:{admin_port} ({reason}): "
            f"is the kong container running? (docker ps -a on {name}; deploy with pyinfra inventory.py deploy.py)"
        ) from None
    with channel:
        channel.settimeout(CONNECT_TIMEOUT_S)
        channel.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n".encode())
        response = b""
        try:
            while chunk := channel.recv(65536):
                response += chunk
        except socket.timeout:
            raise UserError(f"Kong's admin API on {name} did not finish answering {path}") from None
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in f"{status_line} ":
        raise UserError(f"Kong's admin API on {name} answered {path} with {status_line or 'nothing'!r}")
    try:
        return json.loads(body)
    except ValueError:
        raise UserError(f"Kong's admin API on {name} answered {path} with something that is not JSON") from None


def print_gateway_status(settings: Settings) -> int:
    name, host = kong_host(load_state())
    client = _connect(name, host)
    try:
        answers = {key: _get(client, name, settings.gateway.admin_port, path) for key, path in PATHS.items()}
    finally:
        client.close()
    lines, healthy = format_status(name, answers["health"], answers["services"], answers["plugins"])
    print("\n".join(lines))
    return 0 if healthy else 1
