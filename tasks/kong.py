"""The `kong` group: Docker from the distribution, a DB-less Kong container, its declarative config.

Settings: `gateway:` in stack/settings.py SCHEMA (documented in config.example.yml) and
`kong_admin_cidr`. Files and names: stack/render/kong.py.

Steps, each reporting "no change" when the host already matches:
1. docker.io installed, the docker service running and enabled.
2. The rendered config uploaded as a candidate (kong.next.yml); on a host with no config yet it
   also becomes kong.yml at once (nothing is serving, so nothing needs protecting).
3. The image pulled when missing (a failure is one line: Docker's reason and what to do).
4. The container (re)created when its spec label differs from the wanted spec or it is not
   running, after checking that its ports are free (or held by the container it replaces) and
   `kong config parse` of the candidate in a throw-away container.
5. Otherwise, when the candidate differs from kong.yml: parse it inside the running container,
   install it, `kong reload`. A parse failure stops the deploy and leaves kong.yml serving.
"""

import hashlib
import shlex
from io import StringIO

from pyinfra import host, inventory
from pyinfra.api import FactBase, deploy, operation
from pyinfra.facts.files import File, Sha256File
from pyinfra.operations import files, systemd

from stack.render.kong import (
    CANDIDATE_NAME, CONFIG_NAME, CONTAINER, HOST_DIR, SPEC_LABEL, checked, container_spec,
    docker_run_argv, install_candidate_command, listen_ports, parse_in_new_container_argv,
    parse_in_running_container_argv, ports_free_command, pull_command, reload_argv, render_kong_yml,
    spec_hash,
)
from stack.settings import load_settings
from tasks.packages import packages_installed

CONFIG = f"{HOST_DIR}/{CONFIG_NAME}"
CANDIDATE = f"{HOST_DIR}/{CANDIDATE_NAME}"


class DockerContainer(FactBase):
    """{"label": <value of `label`>, "running": bool} for `container`, or None when it does not exist."""

    def requires_command(self, *args, **kwargs):
        return "docker"

    def command(self, container, label):
        template = f'{{{{index .Config.Labels "{label}"}}}} {{{{.State.Running}}}}'
        return f"docker container inspect --format {shlex.quote(template)} {shlex.quote(container)} 2>/dev/null || true"

    def process(self, output):
        label, _, running = " ".join(output).strip().rpartition(" ")
        if running not in ("true", "false"):
            return None
        # A container without the label shows an empty label: it never matches a spec hash.
        return {"label": label, "running": running == "true"}


class DockerImage(FactBase):
    """The local id of an image, or None when it was never pulled."""

    def requires_command(self, *args, **kwargs):
        return "docker"

    def command(self, image):
        return f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image)} 2>/dev/null || true"

    def process(self, output):
        return output[0].strip() if output and output[0].strip() else None


def _serves(spec: dict) -> bool:
    current = host.get_fact(DockerContainer, container=CONTAINER, label=SPEC_LABEL)
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
    if listen_ports(spec):
        yield ports_free_command(listen_ports(spec))
    yield checked(parse_in_new_container_argv(spec),
                  f"Kong rejected {CANDIDATE}; the container was not (re)created:")
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
    yield checked(parse_in_running_container_argv(),
                  f"Kong rejected {CANDIDATE}; the old {CONFIG} keeps serving:")
    yield install_candidate_command()
    yield shlex.join(reload_argv())


def backend_addresses() -> list[str]:
    """Private addresses of the `backends` group, ordered by host name so the file is stable."""
    backends = sorted(inventory.get_group("backends", default=[]), key=lambda backend: backend.name)
    return [backend.data.get("private_ip") for backend in backends]


@deploy("Deploy Kong")
def deploy_kong(settings=None):
    settings = settings or load_settings()
    text = render_kong_yml(settings, backend_addresses())
    spec = container_spec(settings)

    packages_installed(name="Ensure the Docker engine is installed", packages=["docker.io"])
    systemd.service(name="Ensure Docker runs and starts at boot", service="docker.service",
                    running=True, enabled=True)
    files.directory(name="Ensure Kong's config folder exists", path=HOST_DIR, mode="755")
    files.put(name="Upload the candidate Kong config", src=StringIO(text), dest=CANDIDATE, mode="644")
    first_config(name="Install the first Kong config")
    image_present(name="Ensure the Kong image is present", image=spec["image"])
    container_runs(name="Ensure the Kong container runs the current spec", spec=spec)
    config_applied(name="Apply a changed Kong config (parse, then reload)", spec=spec,
                   config_sha256=hashlib.sha256(text.encode()).hexdigest())
