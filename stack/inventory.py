"""Turn the state file into pyinfra groups with the host data the deploy needs.

Read-only: no AWS call, no write. Without a state file it says to run provision.py, which records
the hosts (`outputs` records AWS hosts found by their tags)."""

import logging
import shlex

from stack.database import required_database
from stack.errors import UserError
from stack.host_keys import address_name
from stack.pinned_ssh import PinnedTransportFactory
from stack.provider import check_recorded_project
from stack.settings import load_settings
from stack.ssh_nodelay import connect_kwargs
from stack.state import Host, known_hosts_file, load_state

GROUP_OF_ROLE = {"db": "db", "backend": "backends", "kong": "kong"}
NO_STATE = (
    "no hosts recorded yet: run python provision.py first (or python provision.py outputs, which "
    "records the AWS hosts it finds by their tags)"
)


def pin_name(host: Host) -> str:
    """The host's name in known_hosts: its instance id on AWS (kept across a new public IP), else
    its address (a local host's never changes)."""
    return host.extra.get("instance_id") or address_name(str(host.public_ip), host.ssh_port)


def host_data(name: str, host: Host) -> dict:
    """pyinfra host data for one recorded host: how to reach it and what it is. Its key must be
    pinned already (provision.py pins it from the host's console): never trusted on first use."""
    pinned_as = pin_name(host)
    shown = (
        f"{name} ({host.extra['instance_id']}, {host.public_ip})"
        if "instance_id" in host.extra
        else f"{name} ({pinned_as})"
    )
    check = PinnedTransportFactory(shown, pinned_as, str(known_hosts_file()), nodelay=bool(connect_kwargs()))
    data = {
        "ssh_hostname": host.public_ip,
        "ssh_user": host.ssh_user,
        "ssh_port": host.ssh_port,
        "ssh_known_hosts_file": str(known_hosts_file()),
        "ssh_strict_host_key_checking": "yes",
        "name": name,
        "role": host.role,
        "backend_key": host.key,
        "private_ip": host.private_ip,
        # The pinned key checked before anything is sent (stack/pinned_ssh.py), and TCP_NODELAY on
        # the socket (stack/ssh_nodelay.py): paramiko's transport_factory does both.
        "ssh_paramiko_connect_kwargs": {"transport_factory": check},
    }
    if host.ssh_key:
        data["ssh_key"] = host.ssh_key
    if host.ssh_user != "root":
        data["_sudo"] = True
    return data


def groups_from_state() -> dict[str, list]:
    """{"db": [(name, data)], "backends": [...], "kong": [...]}; validates settings first."""
    _point_host_key_hints_at_project_file()
    settings = load_settings()
    state = load_state()
    if not state or not state.hosts:
        raise UserError(NO_STATE)
    check_recorded_project(state, settings)
    # db_service rds: no db group; every host gets the database's record (stack/database.py) instead.
    database = required_database(state) if settings.db_service == "rds" else None
    groups: dict[str, list] = {group: [] for group in GROUP_OF_ROLE.values()}
    for name, host in sorted(state.hosts.items()):
        if host.role not in GROUP_OF_ROLE or (database is not None and host.role == "db"):
            continue  # the local RDS stand-in is provision.py's to configure, never the deploy's
        data = host_data(name, host)
        if database is not None:
            data["database"] = database
        groups[GROUP_OF_ROLE[host.role]].append((name, data))
    return groups


class _ProjectKnownHostsHint(logging.Filter):
    """pyinfra answers a changed host key with `ssh-keygen -R <host>`, which edits ~/.ssh/known_hosts,
    not the file it checked: add `-f <the project's known_hosts>` to that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.lstrip().startswith("ssh-keygen -R ") and " -f " not in message:
            record.msg, record.args = f"{message} -f {shlex.quote(str(known_hosts_file()))}", ()
        return True


def _point_host_key_hints_at_project_file() -> None:
    logger = logging.getLogger("pyinfra")
    if not any(isinstance(existing, _ProjectKnownHostsHint) for existing in logger.filters):
        logger.addFilter(_ProjectKnownHostsHint())
