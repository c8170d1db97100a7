"""What `provision.py --provider local` is about to do, decided and rendered without side effects."""

from dataclasses import dataclass

from stack.provider import plan_summary
from stack.state import Host

SYMBOL = {"create": "+", "start": "~", "restart": "~", "keep": " ", "destroy": "-"}


@dataclass(frozen=True)
class Step:
    action: str  # create | start | restart | keep | destroy
    name: str
    role: str
    address: str


def make_plan(
    wanted: dict[str, tuple[str, str | None]],
    addresses: dict[str, str],
    recorded: dict[str, Host],
    running: set[str],
    silent: frozenset[str] | set[str] = frozenset(),
) -> list[Step]:
    """Wanted hosts in settings order (create, start, restart or keep), then recorded hosts no longer
    wanted. `silent`: running hosts that do not answer SSH (e.g. booted without starting sshd)."""
    steps = []
    for name, (role, _key) in wanted.items():
        if name not in recorded or recorded[name].extra.get("local", {}).get("incomplete"):
            action = "create"
        elif name in running:
            action = "restart" if name in silent else "keep"
        else:
            action = "start"
        steps.append(Step(action, name, role, addresses[name]))
    for name, host in sorted(recorded.items()):
        if name not in wanted:
            steps.append(Step("destroy", name, host.role, host.private_ip))
    return steps


def network_setup(
    bridge: str, gateway: str, subnet: str, bridge_found: bool, nat_found: bool | None
) -> tuple[list[str], list[str]]:
    """(what apply creates of the project's network, what could not be checked). `nat_found` is
    None for a user who may not read the NAT rules (iptables needs root): the plan says so
    rather than guess."""
    if not bridge_found or nat_found is False:
        return [f"create bridge {bridge} {gateway} with NAT for {subnet}"], []
    if nat_found is None:
        unknown = f"the NAT rule of {bridge} for {subnet} (reading iptables needs root); apply adds it if missing"
        return [], [f"not checked: {unknown}"]
    return [], []


def render_plan(steps: list[Step], network: list[str], notes: list[str] | tuple[str, ...] = ()) -> str:
    """Terraform-like lines: `+ create des-db  (db, 10.77.0.10)`, then a one-line summary, then
    `note: ...` for each thing the plan could not check."""
    width = max((len(step.name) for step in steps), default=0)
    lines = [f"+ {line}" for line in network]
    for step in steps:
        if step.action == "keep":
            lines.append(f"  {step.name:<{width}}  ({step.role}, {step.address}) running, unchanged")
        elif step.action == "restart":
            lines.append(f"~ restart {step.name:<{width}}  ({step.role}, {step.address}) running but not answering SSH")
        else:
            lines.append(f"{SYMBOL[step.action]} {step.action} {step.name:<{width}}  ({step.role}, {step.address})")
    counts = {action: sum(step.action == action for step in steps) for action in SYMBOL}
    if not network and counts["keep"] == len(steps):
        lines.append(f"No changes: {len(steps)} hosts running.")
    else:
        shown = {
            "to create": counts["create"],
            "to start": counts["start"],
            "to restart": counts["restart"],
            "to destroy": counts["destroy"],
            "unchanged": counts["keep"],
        }
        if not counts["restart"]:
            del shown["to restart"]
        lines.append(plan_summary(shown))
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


def render_destroy_plan(hosts: dict[str, Host], bridge: str | None) -> str:
    """`- destroy des-db  (db, 10.77.0.10)` for each host, the bridge when it goes too, the summary."""
    lines = [f"- destroy {name}  ({host.role}, {host.private_ip})" for name, host in hosts.items()]
    if bridge:
        lines.append(f"- remove bridge {bridge} and its NAT rule")
    return "\n".join(lines + [plan_summary({"to destroy": len(hosts)})])
