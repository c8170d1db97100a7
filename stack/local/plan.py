"""What `provision.py --provider local` is about to do, decided and rendered without side effects."""

from dataclasses import dataclass

SYMBOL = {"create": "+", "start": "~", "restart": "~", "keep": " ", "destroy": "-"}


@dataclass(frozen=True)
class Step:
    action: str  # create | start | restart | keep | destroy
    name: str
    role: str
    address: str


def make_plan(wanted: dict[str, tuple[str, str | None]], addresses: dict[str, str],
              recorded: dict[str, dict], running: set[str], silent: frozenset[str] | set[str] = frozenset()) -> list[Step]:
    """Wanted hosts in settings order (create, start, restart or keep), then recorded hosts no longer
    wanted. `silent`: running hosts that do not answer SSH (e.g. booted without starting sshd)."""
    steps = []
    for name, (role, _key) in wanted.items():
        if name not in recorded or recorded[name].get("local", {}).get("incomplete"):
            action = "create"
        elif name in running:
            action = "restart" if name in silent else "keep"
        else:
            action = "start"
        steps.append(Step(action, name, role, addresses[name]))
    for name, host in sorted(recorded.items()):
        if name not in wanted:
            steps.append(Step("destroy", name, host["role"], host["private_ip"]))
    return steps


def render_plan(steps: list[Step], network: list[str]) -> str:
    """Terraform-like lines: `+ create des-db  (db, 10.77.0.10)`, then a one-line summary."""
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
        restart = f"{counts['restart']} to restart, " if counts["restart"] else ""
        lines.append(f"Plan: {counts['create']} to create, {counts['start']} to start, {restart}"
                     f"{counts['destroy']} to destroy, {counts['keep']} unchanged.")
    return "\n".join(lines)
