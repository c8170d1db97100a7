"""The Kong host after real deploys (pyinfra CLI over SSH, systemd-nspawn hosts).

Kong's image cannot be pulled on these machines, so a plain deploy must stop at the pull with one
clear line, after Docker and kong.yml are in place. When the Kong host can run containers (the
local provider boots it with the nspawn flags of stack/local/docker-in-nspawn.md), a stand-in image
(tests/e2e/kong_standin.sh: busybox, NOT Kong) drives the container's life: create, no change,
reload on a new config, refusal of a bad one, recreate on a new image, and `provision.py status`.
"""

import json
import re
from pathlib import Path

import pytest

from stack.settings import load_settings
from tasks.kong.facts import DockerContainer, DockerImage
from tasks.kong.render import container_spec, render_kong_yml, spec_hash

pytestmark = pytest.mark.e2e

STANDIN = Path(__file__).with_name("kong_standin.sh")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
DEPLOY = "Deploy Kong | "
BEFORE_PULL = [
    DEPLOY + name
    for name in (
        "Ensure the Docker engine is installed",
        "Ensure Docker runs and starts at boot",
        "Ensure Kong's config folder exists",
        "Upload the candidate Kong config",
        "Install the first Kong config",
    )
]
PULL = DEPLOY + "Ensure the Kong image is present"
CONTAINER = DEPLOY + "Ensure the Kong container runs the current spec"
RELOAD = DEPLOY + "Apply a changed Kong config (parse, then reload)"
UPLOAD = DEPLOY + "Upload the candidate Kong config"


@pytest.fixture(scope="module")
def kong(platform):
    return platform.names("kong")[0]


@pytest.fixture(scope="module")
def first(platform):
    return platform.ensure_deployed()


@pytest.fixture(scope="module")
def again(platform, first):
    """A second deploy of the same hosts and settings."""
    return platform.run_deploy()


def kong_steps(names):
    """deploy_kong's own operations among `names`: a Kong node also runs the drain of the backends'
    roll after them (tasks/kong/drain.py), which pyinfra counts as errors of a host that failed first."""
    return [name for name in names or [] if name.startswith(DEPLOY)]


def lines(text):
    return [ANSI.sub("", line) for line in text.splitlines()]


def test_the_pull_failure_is_one_clear_line(first, kong):
    output = lines(first.output)
    failure = [line for line in output if "cannot pull" in line]
    assert len(failure) == 1, "\n".join(failure)
    assert re.fullmatch(
        rf"\s*\[{kong}\]\s+cannot pull kong:2\.7\.2-alpine: \S.*; check the host's internet access or set "
        r"gateway\.image",
        failure[0],
    ), failure[0]
    assert sum("docker.io" in line for line in output) == 1  # Docker's own words appear once, in that line
    # pyinfra also counts the operations a failed host never reached as errors.
    assert kong_steps(first.errors.get(kong)) == [PULL, CONTAINER, RELOAD]
    assert set(BEFORE_PULL) <= first.completed(kong)  # Docker and kong.yml are in place first
    assert kong in first.failed_hosts


def test_docker_engine_is_installed_enabled_and_active(ssh, kong, first):
    code, out = ssh(
        kong, "dpkg-query -W -f='${Status}\\n' docker.io; systemctl is-enabled docker; systemctl is-active docker"
    )
    assert (code, out.split("\n")[:3]) == (0, ["install ok installed", "enabled", "active"]), out


def test_kong_yml_is_the_rendered_config_readable_by_the_container_user(platform, ssh, kong, first):
    expected = render_kong_yml(
        load_settings(platform.config_path), [platform.address(name) for name in platform.names("backend")]
    )
    code, out = ssh(kong, "stat -c '%a %U' /opt/kong /opt/kong/declarative /opt/kong/declarative/kong.yml")
    assert (code, out.split()) == (0, ["755", "root", "755", "root", "644", "root"]), out
    # The image's kong user is not root (uid 100 in the alpine image, 1000 in others): both can read.
    for uid in (100, 1000):
        code, out = ssh(kong, f"setpriv --reuid={uid} --regid={uid} --clear-groups cat /opt/kong/declarative/kong.yml")
        assert code == 0 and out == expected, f"uid {uid}: {out[:300]}"


def test_second_deploy_changes_nothing_on_kong_before_the_pull(again, kong):
    assert again.changed.get(kong, []) == [], again.changed.get(kong)
    assert kong_steps(again.errors.get(kong)) == [PULL, CONTAINER, RELOAD]
    # Kong's own steps (the one apt call per host, deploy.py's, comes first and changes nothing too).
    own = [name for name in again.no_change.get(kong, []) if name.startswith(DEPLOY)]
    assert own == BEFORE_PULL, again.no_change.get(kong)


def test_status_without_a_running_kong_says_so(provision, kong, again):
    result = provision("status")
    assert result.returncode == 1 and result.stderr == "", result.stderr
    assert "! container kong: absent\n! admin API: could not read it (" in result.stdout, result.stdout
    assert result.stdout.splitlines()[-1].startswith("UNHEALTHY: "), result.stdout


# --- with a stand-in image, when the host can run containers ----------------------------------


def _build_standin(ssh, kong, tag):
    code, out = ssh(
        kong,
        "command -v busybox >/dev/null || DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 "
        "apt-get install -y -q busybox-static >/dev/null 2>&1; "
        f"sh -s {tag} <<'STANDIN'\n{STANDIN.read_text()}\nSTANDIN",
    )
    assert code == 0, out


def test_docker_facts_read_real_docker_output(ssh, kong, again):
    """The deploy's facts against this host's real Docker (creating a container needs no cgroups)."""
    _build_standin(ssh, kong, "kong-fact-check:1")
    try:
        code, out = ssh(
            kong, "docker create --name kong-fact-check --label stack.kong.spec=0123abcd kong-fact-check:1 >/dev/null"
        )
        assert code == 0, out
        fact = DockerContainer()
        code, out = ssh(kong, fact.command("kong-fact-check", "stack.kong.spec"))
        assert fact.process(out.splitlines()) == {"label": "0123abcd", "running": False}, out
        code, out = ssh(kong, fact.command("kong-fact-check", "another.label"))
        assert fact.process(out.splitlines()) == {"label": "", "running": False}, out
        code, out = ssh(kong, fact.command("no-such-container", "stack.kong.spec"))
        assert code == 0 and fact.process(out.splitlines()) is None, out  # docker prints an empty line
        image = DockerImage()
        code, out = ssh(kong, image.command("kong-fact-check:1"))
        assert image.process(out.splitlines()).startswith("sha256:"), out
        code, out = ssh(kong, image.command("kong:0.0.0-missing"))
        assert code == 0 and image.process(out.splitlines()) is None, out
    finally:
        ssh(kong, "docker rm --force kong-fact-check; docker rmi kong-fact-check:1")


def _container(ssh, kong):
    code, out = ssh(kong, "docker inspect kong")
    assert code == 0, out
    return json.loads(out)[0]


def _kong_deploy(platform, kong):
    return platform.run_deploy("--limit", kong)


def test_container_life_with_a_stand_in_image(platform, ssh, kong, provision, again):
    _build_standin(ssh, kong, "kong:2.7.2-alpine")
    code, out = ssh(kong, "docker run --rm kong:2.7.2-alpine kong config parse /kong-standin-check 2>&1")
    if "cgroup" in out or "keyring" in out:
        ssh(kong, "docker rmi kong:2.7.2-alpine")
        pytest.skip(
            "this Kong host cannot run containers (booted without the nspawn flags of "
            "stack/local/docker-in-nspawn.md); the pull-failure tests above still ran"
        )
    try:
        settings = load_settings(platform.config_path)
        created = _kong_deploy(platform, kong)
        assert created.returncode == 0, created.output[-3000:]
        assert CONTAINER in created.changed[kong] and RELOAD not in created.changed[kong]
        container = _container(ssh, kong)
        assert container["Config"]["Labels"]["stack.kong.spec"] == spec_hash(container_spec(settings))
        assert container["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        # The host's network, nothing published (test_kong_security.py shows why).
        assert container["HostConfig"]["NetworkMode"] == "host" and not container["HostConfig"]["PortBindings"]
        assert {"KONG_PROXY_LISTEN=0.0.0.0:8000", "KONG_ADMIN_LISTEN=127.0.0.1:8001"} <= set(container["Config"]["Env"])
        assert [(m["Source"], m["Destination"], m["RW"]) for m in container["Mounts"]] == [
            ("/opt/kong/declarative", "/kong/declarative", False)
        ]
        assert "KONG_DATABASE=off" in container["Config"]["Env"]

        _kong_deploy(platform, kong).assert_no_changes(hosts=[kong])

        status = provision("status")
        assert status.returncode == 0, status.output
        for name in platform.names("backend"):
            assert re.search(rf"^  target {re.escape(platform.address(name))}:8080\s+HEALTHY", status.stdout, re.M), (
                status.stdout
            )
        assert "  container kong: running" in status.stdout and "  gateway /status: " in status.stdout

        platform.rewrite_config(gateway={"rate_limit_per_minute": 60})
        reloaded = _kong_deploy(platform, kong)
        assert reloaded.changed[kong] == [UPLOAD, RELOAD], reloaded.changed[kong]
        assert _container(ssh, kong)["Id"] == container["Id"]
        assert ssh(kong, "docker exec kong cat /tmp/reloads")[1] == "reload\n"
        assert "minute: 60\n" in ssh(kong, "cat /opt/kong/declarative/kong.yml")[1]

        platform.rewrite_config(gateway={"rate_limit_per_minute": 60, "health_path": "/BROKEN/"})
        refused = _kong_deploy(platform, kong)
        assert refused.returncode != 0
        assert (
            "Kong rejected /opt/kong/declarative/kong.next.yml; the old /opt/kong/declarative/kong.yml "
            "keeps serving:" in ANSI.sub("", refused.output)
        )
        serving = ssh(kong, "cat /opt/kong/declarative/kong.yml")[1]
        assert "/BROKEN/" not in serving and "minute: 60\n" in serving
        assert ssh(kong, "docker exec kong cat /tmp/reloads")[1] == "reload\n"

        _build_standin(ssh, kong, "kong:2.8.1-alpine")
        platform.rewrite_config(gateway={"rate_limit_per_minute": 60, "image": "kong:2.8.1-alpine"})
        # The only node, no load balancer: recreating its container is an outage, refused unless agreed.
        unagreed = _kong_deploy(platform, kong)
        assert unagreed.returncode != 0
        assert (
            f"{kong}: recreating the Kong container of the only gateway node is an outage (no load balancer): "
            "re-run with --data gateway_outage=yes" in ANSI.sub("", unagreed.output)
        ), unagreed.output[-3000:]
        assert _container(ssh, kong)["Id"] == container["Id"]
        recreated = platform.run_deploy("--limit", kong, "--data", "gateway_outage=yes")
        assert recreated.returncode == 0, recreated.output[-3000:]
        assert CONTAINER in recreated.changed[kong] and RELOAD not in recreated.changed[kong]
        replaced = _container(ssh, kong)
        assert replaced["Id"] != container["Id"] and replaced["Config"]["Image"] == "kong:2.8.1-alpine"
    finally:
        platform.rewrite_config()
        # Back to a host without a Kong image, as the other e2e modules expect.
        ssh(kong, "docker rm --force kong; docker rmi kong:2.7.2-alpine kong:2.8.1-alpine; rm -rf /opt/kong")
