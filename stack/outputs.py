"""Terraform-style outputs, printed from the state: python provision.py outputs."""

from stack.errors import UserError
from stack.settings import Settings
from stack.state import load_state


def render_outputs(state: dict, settings: Settings) -> str:
    lines = ["Outputs:", ""]
    width = max(len(name) for name in state["hosts"])
    for name, host in sorted(state["hosts"].items()):
        lines.append(f"  {name:<{width}}  private {host['private_ip']:<15}  public {host.get('public_ip') or '-'}")
    kong = [host for host in state["hosts"].values() if host["role"] == "kong"]
    if kong:
        address = kong[0].get("public_ip") or kong[0]["private_ip"]
        gateway = settings.gateway
        identity = f" -i {kong[0]['ssh_key']}" if kong[0].get("ssh_key") else ""
        lines += [
            "",
            f"  kong_proxy_url = http://{address}:{gateway.proxy_port}{gateway.health_path}",
            f"  kong_admin     = ssh{identity} -L {gateway.admin_port}:127.0.0.1:{gateway.admin_port} "
            f"{kong[0]['ssh_user']}@{address}   then http://127.0.0.1:{gateway.admin_port}/",
            "  gateway_status = python provision.py status",
        ]
    return "\n".join(lines)


def print_outputs(settings: Settings) -> int:
    state = load_state()
    if not state or not state.get("hosts"):
        raise UserError("no hosts recorded yet: run python provision.py first")
    print(render_outputs(state, settings))
    return 0
