"""Kong's operations: each reads the host and yields nothing when it already matches.

With several nodes the deploy calls container_runs and config_applied once per node (`node`,
in the order of `roll`): pyinfra finishes each operation on every host before the next starts,
so one node at a time is recreated or reloaded, each answering before the next begins, and a
node that fails stops the roll.
"""

import shlex

from pyinfra import host, logger, state
from pyinfra.api import FunctionCommand, operation
from pyinfra.facts.files import File, Sha256File

from tasks import asked_once
from tasks.kong import balancer
from tasks.kong.admin import ready_command
from tasks.kong.commands import (
    checked,
    docker_run_argv,
    fail,
    install_candidate_command,
    listen_ports,
    parse_in_new_container_argv,
    parse_in_running_container_argv,
    ports_free_command,
    pull_command,
    reload_argv,
)
from tasks.kong.facts import DockerContainer, DockerImage
from tasks.kong.render import CANDIDATE, CONFIG, CONTAINER, SPEC_LABEL, admin_port, spec_hash


def _serves(spec: dict) -> bool:
    # Asked once for both operations below, again after the first (re)creates the container.
    current = asked_once.fact(DockerContainer, container=CONTAINER, label=SPEC_LABEL)
    return bool(current and current["running"] and current["label"] == spec_hash(spec))


@operation()
def first_config():
    if host.get_fact(File, path=CONFIG) is not None:
        host.noop("kong.yml exists; changes go through parse and reload")
        return
    yield install_candidate_command()


@operation()
def image_present(image: str):
    if host.get_fact(DockerImage, image=image):
        host.noop(f"image {image} is present")
        return
    yield pull_command(image)


def _not_my_turn(node: str | None) -> bool:
    if node is None or node == host.name:
        return False
    host.noop(f"{node}'s turn")
    return True


def _stopped(roll: list[str] | None) -> list[str]:
    """The nodes of the roll that failed earlier in this run (their turn came first)."""
    if not roll:
        return []
    failed = {failed_host.name for failed_host in state.failed_hosts}
    return [name for name in roll if name in failed and name != host.name]


@operation()
def container_runs(
    spec: dict,
    node: str | None = None,
    roll: list[str] | None = None,
    settings=None,
    outage_ok: bool = False,
):
    """(Re)create the container when its spec changed or it stopped. With `settings`, a node that
    serves leaves the load balancer first and comes back once it answers; the only node without
    a load balancer is recreated only when the operator agreed to the outage (`outage_ok` or the prompt)."""
    if _serves(spec):
        host.noop(f"container {CONTAINER} runs spec {spec_hash(spec)}")
        return
    if _not_my_turn(node):
        return
    stopped = _stopped(roll)
    if stopped:
        yield fail(f"{host.name}: not recreated: the roll stopped at {', '.join(stopped)}; its container keeps serving")
        return
    current = asked_once.fact(DockerContainer, container=CONTAINER, label=SPEC_LABEL)
    asked_once.forget(DockerContainer)
    serving = bool(current and current["running"]) and settings is not None
    behind = serving and balancer.balanced(settings)
    alone = serving and not behind and len(roll or [host.name]) == 1
    if listen_ports(spec):
        yield ports_free_command(listen_ports(spec))
    yield checked(parse_in_new_container_argv(spec), f"Kong rejected {CANDIDATE}; the container was not (re)created:")
    if alone:
        if not state.is_executing:
            logger.warning(
                f"{host.name}: recreating the Kong container of the only gateway node is an OUTAGE (no load "
                f"balancer); the deploy will ask (or --data {balancer.OUTAGE_FLAG}=yes)"
            )
        yield FunctionCommand(balancer.outage_agreed, (host.name, outage_ok), {})
    if behind:
        yield FunctionCommand(balancer.take_out, (settings, host.name), {})
    yield install_candidate_command()
    yield f"docker rm --force {CONTAINER} >/dev/null 2>&1 || true"
    yield shlex.join(docker_run_argv(spec))
    yield ready_command(admin_port(spec))
    if behind:
        yield FunctionCommand(balancer.put_back, (settings, host.name), {})


@operation()
def config_applied(spec: dict, config_sha256: str, node: str | None = None, roll: list[str] | None = None):
    """Parse the candidate in the running container, install it, `kong reload` (graceful), then
    wait until the node answers with it: only then does the next node's turn come."""
    if not _serves(spec):
        host.noop("the container is (re)created with this config")
        return
    if _not_my_turn(node):
        return
    if host.get_fact(Sha256File, path=CONFIG) == config_sha256:
        host.noop("Kong already serves this config")
        return
    stopped = _stopped(roll)
    if stopped:
        yield fail(f"{host.name}: not reloaded: the roll stopped at {', '.join(stopped)}; the old {CONFIG} serves")
        return
    yield checked(parse_in_running_container_argv(), f"Kong rejected {CANDIDATE}; the old {CONFIG} keeps serving:")
    yield install_candidate_command()
    yield shlex.join(reload_argv())
    yield ready_command(admin_port(spec))
