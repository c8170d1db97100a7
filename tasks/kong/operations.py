"""Kong's operations: each reads the host and yields nothing when it already matches."""

import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import File, Sha256File

from tasks import asked_once
from tasks.kong.commands import (
    checked,
    docker_run_argv,
    install_candidate_command,
    listen_ports,
    parse_in_new_container_argv,
    parse_in_running_container_argv,
    ports_free_command,
    pull_command,
    reload_argv,
)
from tasks.kong.facts import DockerContainer, DockerImage
from tasks.kong.render import CANDIDATE, CONFIG, CONTAINER, SPEC_LABEL, spec_hash


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


@operation()
def container_runs(spec: dict):
    if _serves(spec):
        host.noop(f"container {CONTAINER} runs spec {spec_hash(spec)}")
        return
    asked_once.forget(DockerContainer)
    if listen_ports(spec):
        yield ports_free_command(listen_ports(spec))
    yield checked(parse_in_new_container_argv(spec), f"Kong rejected {CANDIDATE}; the container was not (re)created:")
    yield install_candidate_command()
    yield f"docker rm --force {CONTAINER} >/dev/null 2>&1 || true"
    yield shlex.join(docker_run_argv(spec))


@operation()
def config_applied(spec: dict, config_sha256: str):
    if not _serves(spec):
        host.noop("the container is (re)created with this config")
        return
    if host.get_fact(Sha256File, path=CONFIG) == config_sha256:
        host.noop("Kong already serves this config")
        return
    yield checked(parse_in_running_container_argv(), f"Kong rejected {CANDIDATE}; the old {CONFIG} keeps serving:")
    yield install_candidate_command()
    yield shlex.join(reload_argv())
