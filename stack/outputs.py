"""Terraform-style outputs, rendered from the state (printed by apply and `provision.py outputs`)."""

import shlex

from stack.settings import Settings
from stack.state import Host, State, known_hosts_file


def tunnel_command(host: Host, address: str, port: int) -> str:
    """ssh -L to Kong's admin API, checking the host's key against the project's known_hosts only."""
    identity = ["-i", host.ssh_key] if host.ssh_key else []
    # An AWS host's keys are pinned under its instance id (provision.py reads them from its console).
    alias = ["-o", f"HostKeyAlias={host.extra['instance_id']}"] if host.extra.get("instance_id") else []
    return shlex.join(
        [
            "ssh",
            *identity,
            "-o",
            f"UserKnownHostsFile={known_hosts_file()}",
            "-o",
            "StrictHostKeyChecking=yes",
            *alias,
            "-L",
            f"{port}:127.0.0.1:{port}",
            f"{host.ssh_user}@{address}",
        ]
    )


def render_outputs(state: State, settings: Settings) -> str:
    lines = ["Outputs:", ""]
    width = max((len(name) for name in state.hosts), default=0)
    for name, host in sorted(state.hosts.items()):
        lines.append(f"  {name:<{width}}  private {host.private_ip:<15}  public {host.public_ip or '-'}")
    database = state.database
    if database:  # db_service rds: the endpoint the backends connect to over TLS (verify-full)
        lines += [
            "",
            f"  database       = {database['address']}:{database['port']}   ({database['identifier']}, "
            f"master user {database['master_user']}, TLS verify-full)",
        ]
    kong = [host for host in state.hosts.values() if host.role == "kong"]
    if kong:
        address = kong[0].public_ip or kong[0].private_ip
        gateway = settings.gateway
        balancer = (state.aws or {}).get("load_balancer") or {}
        # Behind the load balancer the service's one address is its DNS name, on port 80.
        url = (
            f"http://{balancer['dns_name']}{gateway.health_path}"
            if balancer.get("dns_name")
            else f"http://{address}:{gateway.proxy_port}{gateway.health_path}"
        )
        lines += [
            "",
            f"  kong_proxy_url = {url}",
            f"  kong_admin     = {tunnel_command(kong[0], address, gateway.admin_port)}"
            f"   then http://127.0.0.1:{gateway.admin_port}/",
            "  gateway_status = python provision.py status",
        ]
    return "\n".join(lines)
