"""systemd units that must run and start at boot, all of an operation's units read with one command.

pyinfra's `systemd.service` asks two commands per unit (its state, then whether it is enabled);
a deploy that changes nothing pays them on every host every run (issue 12). Here one
`systemctl show` answers both for every unit named. Running and enabled mean what they mean to
pyinfra: a sub-state of running, waiting, exited, listening or mounted; a unit file state of
enabled or static.
"""

import shlex

from pyinfra import host
from pyinfra.api import FactBase, operation

RUNNING = ("running", "waiting", "exited", "listening", "mounted")
ENABLED = ("enabled", "static")


class UnitStates(FactBase):
    """[{"running": bool, "enabled": bool}, ...], in the order of `units`."""

    def requires_command(self, units):
        return "systemctl"

    def command(self, units):
        names = " ".join(shlex.quote(unit) for unit in units)
        return f"systemctl show --property Id --property SubState --property UnitFileState {names}"

    def process(self, output):
        # One block per unit, in the order asked, each starting with its Id.
        units: list[dict] = []
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "Id":
                units.append({"running": False, "enabled": False})
            elif units and key == "SubState":
                units[-1]["running"] = value in RUNNING
            elif units and key == "UnitFileState":
                units[-1]["enabled"] = value in ENABLED
        return units

    @staticmethod
    def default():
        return []


@operation()
def units_running(units: list[str]):
    """Start each of `units` that does not run, enable each that does not start at boot."""
    states = list(host.get_fact(UnitStates, units=units) or [])
    states += [{"running": False, "enabled": False}] * (len(units) - len(states))
    commands = []
    for unit, unit_state in zip(units, states, strict=False):
        if not unit_state["running"]:
            commands.append(f"systemctl start {shlex.quote(unit)}")
        if not unit_state["enabled"]:
            commands.append(f"systemctl enable {shlex.quote(unit)}")
    if not commands:
        host.noop(f"{', '.join(units)} running and enabled")
    yield from commands
