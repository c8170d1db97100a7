"""deploy_kong on a fake host: what it would do on a fresh, an unchanged and a changed gateway host."""

import hashlib
import shlex
from datetime import datetime, timedelta

import pytest
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File, Sha256File
from pyinfra.facts.server import Date

from stack.settings import settings_from
from tasks.kong import balancer
from tasks.kong.admin import ready_command
from tasks.kong.commands import docker_run_argv, ports_free_command
from tasks.kong.deploy import deploy_kong
from tasks.kong.facts import DockerContainer, DockerImage
from tasks.kong.render import CANDIDATE, CONFIG, container_spec, render_kong_yml, spec_hash
from tasks.units import UnitStates
from tasks.uploads import FileSummaries, FileSummary
from tests.harness import file_summaries, per_path, run_deploy

NOW = datetime(2026, 11, 28, 1, 0, 0)
STAMP = "/var/lib/apt/periodic/update-success-stamp"
DOCKER = "units=['docker.service']"
TWO = [("des-backend-a", {"private_ip": "10.0.1.11"}), ("des-backend-b", {"private_ip": "10.0.1.12"})]
KONG = "container=kong, label=stack.kong.spec"
OWNED = {"mode": 644, "user": "root", "group": "root"}

READY = ready_command(8001)


class FakeProvider:
    """The provider's gateway interface (stack/provider.py), without any load balancer behind it."""

    def __init__(self, balanced: bool):
        self.balanced = balanced

    def gateway_balanced(self, settings) -> bool:
        return self.balanced


@pytest.fixture(autouse=True)
def no_load_balancer(monkeypatch):
    """Like local hosts: no load balancer (a test that wants one patches its own)."""
    monkeypatch.setattr(balancer, "_provider", lambda: FakeProvider(False))


OPS = [
    "Ensure the Docker engine is installed",
    "Ensure Docker runs and starts at boot",
    "Ensure Kong's config folder exists",
    "Upload the candidate Kong config",
    "Install the first Kong config",
    "Ensure the Kong image is present",
    "Ensure the Kong container runs the current spec",
    "Apply a changed Kong config (parse, then reload)",
]


def fresh_host(settings):
    return {
        File: {f"path={STAMP}": None, f"path={CANDIDATE}": None, f"path={CONFIG}": None},
        Directory: {"path=/opt/kong/declarative": None, f"path={CANDIDATE}": None},
        DebPackages: {},
        UnitStates: {DOCKER: [{"running": False, "enabled": False}]},
        DockerImage: {f"image={settings.gateway.image}": None},
        DockerContainer: {KONG: None},
        Sha256File: {f"path={CONFIG}": None},
        **per_path(FileSummary, FileSummaries, file_summaries({CANDIDATE: None})),
    }


def serving_host(settings, text, image_id="sha256:0a1b"):
    """A host where a deploy of `settings` with kong.yml = `text` completed."""
    return {
        File: {
            f"path={STAMP}": {"mtime": NOW - timedelta(days=30)},  # an old apt cache is no reason to change
            f"path={CANDIDATE}": dict(OWNED, size=len(text)),
            f"path={CONFIG}": dict(OWNED, size=len(text)),
        },
        Date: NOW,
        Directory: {"path=/opt/kong/declarative": {"mode": 755, "user": "root", "group": "root"}},
        DebPackages: {"docker.io": {"20.10.24+dfsg1-1+deb12u1+b6"}},
        UnitStates: {DOCKER: [{"running": True, "enabled": True}]},
        DockerImage: {f"image={settings.gateway.image}": image_id},
        DockerContainer: {KONG: {"label": spec_hash(container_spec(settings)), "running": True}},
        Sha1File: {f"path={CANDIDATE}": hashlib.sha1(text.encode()).hexdigest()},
        Sha256File: {f"path={CONFIG}": hashlib.sha256(text.encode()).hexdigest()},
        **per_path(
            FileSummary,
            FileSummaries,
            file_summaries({CANDIDATE: (text, OWNED["mode"], OWNED["user"], OWNED["group"])}),
        ),
    }


def deploy(settings, facts, backends=TWO):
    return run_deploy(
        deploy_kong, facts=facts, groups=["kong"], other_hosts={"backends": backends}, kwargs={"settings": settings}
    )


def test_fresh_host_gets_docker_the_config_and_the_container():
    settings = settings_from({})
    run = deploy(settings, fresh_host(settings))

    assert run.names == OPS
    assert run.changed == OPS[:-1]  # the container is created with the config: nothing to reload
    assert (
        "Dpkg::Options::=--force-confold install docker.io ||"
        in run.op("Ensure the Docker engine is installed").commands[-1]
    )
    assert run.op("Ensure Docker runs and starts at boot").commands == [
        "systemctl start docker.service",
        "systemctl enable docker.service",
    ]
    assert run.op("Upload the candidate Kong config").uploads == {
        CANDIDATE: render_kong_yml(settings, ["10.0.1.11", "10.0.1.12"])
    }
    assert run.op("Install the first Kong config").commands == [f"install -m 0644 {CANDIDATE} {CONFIG}"]
    assert "docker pull --quiet kong:2.7.2-alpine" in run.op("Ensure the Kong image is present").commands[0]
    create = run.op("Ensure the Kong container runs the current spec").commands
    # Its ports are checked before anything else: a taken one stops the deploy with the old container.
    assert create[0] == ports_free_command({8000: "gateway.proxy_port", 8001: "gateway.admin_port"})
    assert "kong config parse /kong/declarative/kong.next.yml" in create[1]
    assert create[2:] == [
        f"install -m 0644 {CANDIDATE} {CONFIG}",
        "docker rm --force kong >/dev/null 2>&1 || true",
        shlex.join(docker_run_argv(container_spec(settings))),
        READY,  # a fresh host was serving nothing: no outage to agree to
    ]
    assert not any("kong reload" in command for command in run.commands)


def test_nothing_changed_means_no_change_no_reload_no_recreate():
    settings = settings_from({})
    text = render_kong_yml(settings, ["10.0.1.11", "10.0.1.12"])
    run = deploy(settings, serving_host(settings, text))

    assert run.names == OPS
    assert run.changed == []
    assert run.commands == []


def test_changed_config_is_parsed_then_reloaded_without_recreating():
    settings = settings_from({})
    old = render_kong_yml(settings, ["10.0.1.11"])
    run = deploy(settings, serving_host(settings, old))  # a second backend was added

    assert run.changed == ["Upload the candidate Kong config", "Apply a changed Kong config (parse, then reload)"]
    new = run.op("Upload the candidate Kong config").uploads[CANDIDATE]
    assert "10.0.1.12:8080" in new and "10.0.1.12" not in old
    parse, install, reload, ready = run.op("Apply a changed Kong config (parse, then reload)").commands
    assert parse.startswith("out=$(docker exec kong kong config parse /kong/declarative/kong.next.yml 2>&1) ||")
    assert "the old /opt/kong/declarative/kong.yml keeps serving" in parse
    assert install == f"install -m 0644 {CANDIDATE} {CONFIG}"
    assert reload == "docker exec kong kong reload"
    assert ready == READY
    assert not any("docker run" in command or "docker rm" in command for command in run.commands)


def test_removed_backend_also_reloads():
    settings = settings_from({})
    old = render_kong_yml(settings, ["10.0.1.11", "10.0.1.12"])
    run = deploy(settings, serving_host(settings, old), backends=TWO[:1])

    assert run.changed == ["Upload the candidate Kong config", "Apply a changed Kong config (parse, then reload)"]
    assert "10.0.1.12" not in run.op("Upload the candidate Kong config").uploads[CANDIDATE]


def test_changed_image_pulls_and_recreates_without_a_reload():
    before = settings_from({})
    after = settings_from({"gateway": {"image": "kong:2.8.1-alpine"}})
    text = render_kong_yml(before, ["10.0.1.11", "10.0.1.12"])
    facts = serving_host(before, text)
    facts[DockerImage] = {"image=kong:2.8.1-alpine": None}
    run = deploy(after, facts)

    assert run.changed == ["Ensure the Kong image is present", "Ensure the Kong container runs the current spec"]
    assert "docker pull --quiet kong:2.8.1-alpine" in run.op("Ensure the Kong image is present").commands[0]
    recreate = run.op("Ensure the Kong container runs the current spec").commands
    assert "ss -Hltnp" in recreate[0]
    assert "kong:2.8.1-alpine kong config parse" in recreate[1]
    # The only node, no load balancer: an outage, agreed to before anything is removed.
    assert recreate[2] == "call outage_agreed"
    assert recreate[4] == "docker rm --force kong >/dev/null 2>&1 || true"
    assert recreate[5].endswith(" kong:2.8.1-alpine")
    assert f"stack.kong.spec={spec_hash(container_spec(after))}" in recreate[5]
    assert recreate[6] == READY


def test_admin_cidr_opens_the_admin_port_by_recreating():
    before = settings_from({})
    after = settings_from({"kong_admin_cidr": "203.0.113.7/32"})
    text = render_kong_yml(before, ["10.0.1.11", "10.0.1.12"])
    facts = serving_host(after, text)
    facts[DockerContainer] = {KONG: {"label": spec_hash(container_spec(before)), "running": True}}
    run = deploy(after, facts)

    assert run.changed == ["Ensure the Kong container runs the current spec"]
    commands = run.op("Ensure the Kong container runs the current spec").commands
    assert "--env KONG_ADMIN_LISTEN=0.0.0.0:8001" in commands[5]


def test_stopped_container_is_recreated():
    settings = settings_from({})
    text = render_kong_yml(settings, ["10.0.1.11", "10.0.1.12"])
    facts = serving_host(settings, text)
    facts[DockerContainer] = {KONG: {"label": spec_hash(container_spec(settings)), "running": False}}
    run = deploy(settings, facts)

    assert run.changed == ["Ensure the Kong container runs the current spec"]


def test_every_operation_of_a_non_root_user_runs_with_sudo():
    settings = settings_from({})
    run = run_deploy(
        deploy_kong,
        facts=fresh_host(settings),
        groups=["kong"],
        host_data={"_sudo": True},
        other_hosts={"backends": TWO},
        kwargs={"settings": settings},
    )
    assert all(op.global_arguments.get("_sudo") for op in run.ops)


def test_the_container_is_read_once_unless_the_run_recreates_it():
    settings = settings_from({})
    text = render_kong_yml(settings, ["10.0.1.11", "10.0.1.12"])
    stopped = serving_host(settings, text)
    stopped[DockerContainer] = {KONG: {"label": spec_hash(container_spec(settings)), "running": False}}
    asked = []
    for facts in (serving_host(settings, text), stopped):
        run = run_deploy(
            deploy_kong,
            facts=facts,
            groups=["kong"],
            other_hosts={"backends": TWO},
            kwargs={"settings": settings},
            yes=True,
        )
        asked.append(sum(call.startswith(f"{DockerContainer.name}(") for call in run.fact_calls))
    assert asked == [1, 2]  # once for the container and the config; again after a recreate
