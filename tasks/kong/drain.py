"""Kong's side of a backend switch: before a batch of backends restarts onto a new release, every
Kong node marks their targets unhealthy (it sends them no new request) and waits; once the switch
passed its health gate, every node marks them healthy again.

These operations run on every host of the roll (tasks/backend/deploy.py roll_out), doing nothing
but on a Kong node whose container runs: a node without Kong sends no request anywhere. The marks
go to each node's admin API on its loopback, over the deploy's SSH (tasks/kong/admin.py): in DB-less
mode each node keeps its own health state.
"""

from collections.abc import Callable

from pyinfra import host
from pyinfra.api import operation

from tasks import asked_once
from tasks.kong.admin import DRAIN_WAIT_S, drain_wait_command, mark_targets_command
from tasks.kong.facts import DockerContainer
from tasks.kong.render import CONTAINER, SPEC_LABEL


def _kong_runs() -> bool:
    if "kong" not in host.groups:
        host.noop("not a Kong node")
        return False
    # The answer deploy_kong reads too (asked once for both).
    current = asked_once.fact(DockerContainer, container=CONTAINER, label=SPEC_LABEL)
    if not (current and current["running"]):
        host.noop("Kong does not run here: it sends no request to drain")
        return False
    return True


@operation()
def targets_drained(restarting: Callable[[], list[str]], drained: list[str], admin_port: int, wait: int = DRAIN_WAIT_S):
    """Mark unhealthy the targets ("ip:port") `restarting()` names, then wait for Kong to stop
    picking them; they are kept in `drained` for targets_restored. Requests already on them are
    finished by gunicorn's graceful stop."""
    drained.clear()  # a preview filled it with what it saw
    if not _kong_runs():
        return
    targets = restarting()
    drained.extend(targets)
    if not targets:
        host.noop("no backend of this batch restarts")
        return
    yield mark_targets_command(admin_port, targets, "unhealthy")
    yield drain_wait_command(wait)


@operation()
def targets_restored(drained: list[str], admin_port: int):
    """Mark the `drained` targets healthy again, after the switch and its health gate (a backend
    that failed it was switched back to its release, or Kong's own checks eject it again)."""
    if not _kong_runs() or not drained:
        host.noop("nothing was drained here")
        return
    yield mark_targets_command(admin_port, list(drained), "healthy")
