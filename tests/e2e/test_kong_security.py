"""What a hostile neighbour or a bad setting can do to the Kong host, tried on real hosts.

The Kong host runs the busybox stand-in (tests/e2e/kong_standin.sh, NOT Kong) in the container the
deploy creates; the attacks aim at that container's ports, so they prove the deploy's Docker and
network set-up, not Kong.
"""

import re
import subprocess
from pathlib import Path

import pytest

from stack.local import network
from tests.e2e.local_platform import BRIDGE_ADDRESS, PREFIX, PYINFRA, PYTHON, ROOT
from tests.e2e.raw_syn import probe

pytestmark = pytest.mark.e2e

STANDIN = Path(__file__).with_name("kong_standin.sh")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def kong(platform):
    return platform.names("kong")[0]


@pytest.fixture(scope="module")
def serving(platform, ssh, kong):
    """The stand-in Kong container, deployed by the real deploy (Kong's group only)."""
    platform.run_deploy("--limit", kong)  # installs Docker, then stops at the pull (no image here)
    code, out = ssh(
        kong,
        "command -v busybox >/dev/null || DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 "
        "apt-get install -y -q busybox-static >/dev/null 2>&1; "
        f"sh -s kong:2.7.2-alpine <<'STANDIN'\n{STANDIN.read_text()}\nSTANDIN",
    )
    assert code == 0, out
    try:
        deployed = platform.run_deploy("--limit", kong)
        if "cgroup" in deployed.output or "keyring" in deployed.output:
            pytest.skip("this Kong host cannot run containers (see stack/local/docker-in-nspawn.md)")
        assert deployed.returncode == 0, deployed.output[-3000:]
        yield
    finally:
        ssh(kong, "docker rm --force kong; docker rmi kong:2.7.2-alpine; rm -rf /opt/kong")


def _container_id(ssh, kong) -> str:
    code, out = ssh(kong, "docker inspect --format '{{.Id}} {{.State.Running}}' kong")
    assert code == 0, out
    container, running = out.split()
    assert running == "true", out
    return container


def _syn(platform, ssh, kong, address, port):
    code, mac = ssh(kong, "cat /sys/class/net/host0/address")
    assert code == 0, mac
    return probe(network.bridge_name(PREFIX), mac.strip(), BRIDGE_ADDRESS, address, port)


def test_the_admin_api_answers_only_on_the_kong_host_itself(platform, ssh, kong, serving):
    # The probe works: the same kind of frame, to the Kong host's own address, opens the proxy.
    assert _syn(platform, ssh, kong, platform.address(kong), 8000) == "syn-ack"
    # moby 45610: a neighbour writes a frame to the Kong host's MAC addressed to 127.0.0.1:8001.
    # With the port published by Docker's DNAT it got a SYN-ACK (then HTTP 200 and full control).
    assert _syn(platform, ssh, kong, "127.0.0.1", 8001) is None
    assert _syn(platform, ssh, kong, platform.address(kong), 8001) in (None, "rst")
    # ...while on the Kong host itself the admin API answers.
    code, out = ssh(
        kong,
        'python3 -c "import urllib.request as u; '
        "print(u.urlopen('http://127.0.0.1:8001/services', timeout=5).status)\"",
    )
    assert (code, out.strip()) == (0, "200"), out


def test_a_taken_proxy_port_fails_the_deploy_before_the_serving_container_goes(platform, ssh, kong, serving):
    before = _container_id(ssh, kong)
    code, out = ssh(kong, "systemd-run --unit=e2e-port-holder python3 -m http.server --bind 0.0.0.0 8090 && sleep 1")
    assert code == 0, out
    try:
        assert platform.rewrite_config(gateway={"proxy_port": 8090}).returncode == 0
        refused = platform.run_deploy("--limit", kong)
        assert refused.returncode != 0
        said = [line for line in ANSI.sub("", refused.output).splitlines() if "8090" in line and "taken" in line]
        assert len(said) == 1, refused.output[-3000:]
        assert re.search(
            r"port 8090 is taken on the Kong host by python3 \(pid \d+\): choose another "
            r"gateway\.proxy_port; the running Kong container was left as it is",
            said[0],
        ), said[0]
        assert _container_id(ssh, kong) == before
        assert _syn(platform, ssh, kong, platform.address(kong), 8000) == "syn-ack"
    finally:
        ssh(kong, "systemctl stop e2e-port-holder")
        platform.rewrite_config()


def test_a_changed_host_key_names_the_projects_known_hosts_file(platform, kong):
    known_hosts = platform.home / "ssh" / "known_hosts"
    saved = known_hosts.read_text()
    address = platform.address(kong)
    other = next(line for line in saved.splitlines() if not line.startswith(f"{address} "))
    try:
        # Every key of the Kong host replaced by another host's: what a re-created host looks like.
        kept = [line for line in saved.splitlines() if not line.startswith(f"{address} ")]
        known_hosts.write_text("\n".join(kept + [f"{address} {other.split(' ', 1)[1]}"]) + "\n")
        result = subprocess.run(
            [PYINFRA, "-y", "inventory.py", "deploy.py", "--limit", kong],
            cwd=ROOT,
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = ANSI.sub("", result.stdout + result.stderr)
        assert result.returncode != 0
        assert f"ssh-keygen -R {address} -f {known_hosts}" in output, output[-2000:]
    finally:
        known_hosts.write_text(saved)


def test_a_second_project_on_a_subnet_in_use_is_refused_in_one_line(platform, tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(f"project_prefix: {PREFIX}x\nlocal_subnet: {platform.base_config['local_subnet']}\n")
    env = {**platform.env, "DEPLOY_HOME": str(tmp_path / "home"), "DEPLOY_CONFIG": str(config)}
    result = subprocess.run(
        [PYTHON, "provision.py", "--provider", "local", "--dry"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        f"error: local_subnet {platform.base_config['local_subnet']} overlaps {BRIDGE_ADDRESS}/24 on "
        f"{network.bridge_name(PREFIX)}"
    ), result.stderr
    assert not network.bridge_exists(network.bridge_name(f"{PREFIX}x"))
