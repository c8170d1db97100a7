"""Turn the state file into pyinfra groups with the host data the deploy needs."""

import logging
import shlex

from stack.errors import UserError
from stack.settings import load_settings
from stack.ssh_nodelay import connect_kwargs
from stack.state import known_hosts_file, load_state

GROUP_OF_ROLE = {"db": "db", "backend": "backends", "kong": "kong"}


def host_data(name: str, host: dict) -> dict:
    """pyinfra host data for one recorded host: how to reach it and what it is."""
    data = {
        "ssh_hostname": host["public_ip"],
        "ssh_user": host["ssh_user"],
        "ssh_port": host.get("ssh_port", 22),
        "ssh_known_hosts_file": str(known_hosts_file()),
        "ssh_strict_host_key_checking": "accept-new",
        "name": name,
        "role": host["role"],
        "backend_key": host.get("key"),
        "private_ip": host["private_ip"],
        **connect_kwargs(),  # TCP_NODELAY on the SSH socket: see stack/ssh_nodelay.py
    }
    if host.get("ssh_key"):
        data["ssh_key"] = host["ssh_key"]
    if host["ssh_user"] != "root":
        data["_sudo"] = True
    return data


def groups_from_state() -> dict[str, list]:
    """{"db": [(name, data)], "backends": [...], "kong": [...]}; validates settings first."""
    _point_host_key_hints_at_project_file()
    settings = load_settings()
    state = load_state()
    if state is None:
        state = _state_from_ec2_tags(settings)
    if not state or not state.get("hosts"):
        raise UserError("no hosts recorded yet: run python provision.py first")
    if state.get("prefix") != settings.project_prefix:
        raise UserError(
            f"the state holds project {state.get('prefix')!r} but project_prefix is "
            f"{settings.project_prefix!r}: destroy the old hosts or set DEPLOY_HOME to another folder"
        )
    groups: dict[str, list] = {group: [] for group in GROUP_OF_ROLE.values()}
    for name, host in sorted(state["hosts"].items()):
        groups[GROUP_OF_ROLE[host["role"]]].append((name, host_data(name, host)))
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


def _state_from_ec2_tags(settings) -> dict | None:
    """No state file: the AWS hosts can still be found by their tags (kept as the new state file)."""
    from stack.aws.discover import state_from_tags
    from stack.state import save_state

    state = state_from_tags(settings)
    if state:
        save_state(state)
    return state
