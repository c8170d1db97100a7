"""Two Kong nodes on local hosts (gateway.nodes: 2; no load balancer locally), after real deploys.

Each node runs the PROXYING stand-in (tests/e2e/kong_proxy_standin.py: python, NOT Kong; what it
mimics and what not is said there): it forwards to the HEALTHY targets of its kong.yml and honours
the admin API's health marks, so a request "through the nodes" goes through the path the deploy
drives. Load is sent to both nodes' proxy ports, a fresh connection per request, while the deploy
reloads the nodes one at a time and while a backend code deploy switches the batches behind the
drain; not one request may fail. Then a second deploy changes nothing.
"""

import os
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stack.local import machines
from stack.settings import load_settings
from tasks.kong.render import render_kong_yml

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TWO = {"nodes": 2}
RELOAD = "Deploy Kong | Apply a changed Kong config (parse, then reload), node {n} of 2 ({name})"
UPLOAD = "Deploy Kong | Upload the candidate Kong config"
IMAGE = "kong:2.7.2-alpine"


def _build_proxy_standin(ssh, name):
    code, out = ssh(
        name,
        "command -v busybox >/dev/null || DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 "
        "apt-get install -y -q busybox-static >/dev/null 2>&1; "
        f"cat > /root/kong_proxy_standin.py <<'PROGRAM'\n{(HERE / 'kong_proxy_standin.py').read_text()}PROGRAM\n"
        f"sh -s {IMAGE} /root/kong_proxy_standin.py <<'STANDIN'\n{(HERE / 'kong_proxy_standin.sh').read_text()}STANDIN",
        timeout=600,
    )
    assert code == 0 and "built proxying stand-in" in out, out


class Load:
    """Requests to every node's proxy port, one after another per node, each on a fresh connection."""

    def __init__(self, urls: list[str], pause: float = 0.05):
        self.urls, self.pause = urls, pause
        self.results: list[tuple[str, object]] = []
        self.running = True
        self.threads = [threading.Thread(target=self._loop, args=(url,), daemon=True) for url in urls]

    def _loop(self, url: str) -> None:
        while self.running:
            try:
                with urllib.request.urlopen(url, timeout=10) as answer:
                    answer.read()
                    self.results.append((url, answer.status))
            except urllib.error.HTTPError as error:
                self.results.append((url, error.code))
            except OSError as error:
                self.results.append((url, repr(error)))
            time.sleep(self.pause)

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        for thread in self.threads:
            thread.join(timeout=15)

    def failed(self) -> list:
        return [(url, result) for url, result in self.results if result not in (200, 302)]

    def per_url(self) -> dict[str, int]:
        return {url: sum(1 for u, _ in self.results if u == url) for url in self.urls}


@pytest.fixture(scope="module")
def nodes(platform, ssh):
    """Two Kong nodes serving the proxying stand-in, behind a full deploy that succeeded."""
    platform.ensure_deployed()
    result = platform.rewrite_config(gateway=TWO)
    assert result.returncode == 0, result.output
    names = platform.names("kong")
    assert names == [f"{platform.prefix}-kong", f"{platform.prefix}-kong-2"], names
    try:
        platform.run_deploy("--limit", "kong")  # Docker on both (the pull of Kong's image fails here)
        for name in names:
            _build_proxy_standin(ssh, name)
        deployed = platform.run_deploy()
        assert deployed.returncode == 0, deployed.output[-5000:]
        yield names
    finally:
        for name in names:
            ssh(name, f"docker rm --force kong; docker rmi {IMAGE}; rm -rf /opt/kong /root/kong_proxy_standin.py")
        platform.rewrite_config()


def _urls(platform, names):
    settings = load_settings(platform.config_path)
    return [
        f"http://{platform.address(name)}:{settings.gateway.proxy_port}{settings.gateway.health_path}" for name in names
    ]


def _container_file(ssh, name, path):
    code, out = ssh(name, f"docker exec kong cat {path} 2>/dev/null || true")
    return [line.split() for line in out.splitlines() if line.strip()]


def test_both_nodes_serve_the_same_config_and_status_shows_it(platform, provision, ssh, nodes):
    expected = render_kong_yml(
        load_settings(platform.config_path), [platform.address(name) for name in platform.names("backend")]
    )
    for name in nodes:
        assert ssh(name, "cat /opt/kong/declarative/kong.yml")[1] == expected, name
    status = provision("status")
    assert status.returncode == 0, status.output
    hashes = re.findall(r"^  config kong.yml sha256 ([0-9a-f]{12})$", status.stdout, re.M)
    assert len(hashes) == 2 and hashes[0] == hashes[1], status.stdout
    for name in nodes:
        assert f"KONG  {name}\n  container kong: running\n" in status.stdout, status.stdout


def _sshd_cgroups(name: str) -> set[str]:
    """The cgroups (as this machine sees them) of the sshd processes of host `name`."""
    namespace = os.readlink(f"/proc/{machines.container_inits(name)[0]}/ns/pid")
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            ours = entry.name.isdigit() and os.readlink(entry / "ns/pid") == namespace
            if ours and (entry / "comm").read_text().strip() == "sshd":
                found |= {line for line in (entry / "cgroup").read_text().splitlines() if "ssh.service" in line}
        except OSError:
            continue
    return found


def test_each_kong_node_runs_its_sshd_in_its_own_cgroups(nodes):
    # With this machine's whole cgroup tree bound into both, the two nodes' systemds shared ONE
    # ssh.service cgroup, and status' SSH to one of them hung for 60 s (Debian 13 guests).
    first, second = (_sshd_cgroups(name) for name in nodes)
    assert first and second and not first & second, (first, second)
    if machines.has_cgroup_v1():
        assert all(f"/sprint2-{nodes[0]}/" in line for line in first), first


def test_status_names_the_nodes_whose_configs_differ(provision, ssh, nodes):
    code, out = ssh(
        nodes[1],
        "cp -p /opt/kong/declarative/kong.yml /root/kong.yml.saved && echo '# edited' >> /opt/kong/declarative/kong.yml",
    )
    assert code == 0, out
    try:
        status = provision("status")
        # Two nodes that disagree: status cannot tell which one is right, so it names both.
        assert status.returncode == 1 and status.stdout.count("(differs from the other nodes)") == 2, status.stdout
        assert status.stdout.splitlines()[-1].startswith(f"UNHEALTHY: {nodes[0]}, {nodes[1]} "), status.stdout
    finally:
        ssh(nodes[1], "mv /root/kong.yml.saved /opt/kong/declarative/kong.yml")


def test_a_config_change_reloads_one_node_at_a_time_without_a_failed_request(platform, ssh, nodes):
    platform.write_config(gateway={**TWO, "rate_limit_per_minute": 60})
    try:
        with Load(_urls(platform, nodes)) as load:
            time.sleep(1)
            result = platform.run_deploy("--limit", "kong")
            time.sleep(1)
        assert result.returncode == 0, result.output[-4000:]
        for number, name in enumerate(nodes, start=1):
            assert result.changed[name] == [UPLOAD, RELOAD.format(n=number, name=name)], result.changed[name]
        reloads = [_container_file(ssh, name, "/tmp/reloads") for name in nodes]
        assert [len(times) for times in reloads] == [1, 1], reloads
        assert float(reloads[0][0][0]) < float(reloads[1][0][0])  # node 1 reloaded (and answered) first
        print(f"kong.yml roll: {load.per_url()} requests, {len(load.failed())} failed")  # shown with -s
        assert load.failed() == [] and min(load.per_url().values()) > 10, (load.failed()[:10], load.per_url())
        for name in nodes:
            # each of the 2 nodes counts on its own: its share of the 60 (tasks/kong/render.py)
            assert "minute: 30\n" in ssh(name, "cat /opt/kong/declarative/kong.yml")[1]
    finally:
        platform.write_config(gateway=TWO)
        assert platform.run_deploy("--limit", "kong").returncode == 0


def test_a_backend_code_deploy_under_load_through_kong_fails_no_request(platform, app_repo, ssh, nodes):
    backends = platform.names("backend")
    for name in nodes:
        ssh(name, "docker exec kong sh -c ': > /tmp/admin-calls'")
    app_repo.push_commit("A code change behind the gateway", {"release-note.txt": f"{time.time()}\n"})
    with Load(_urls(platform, nodes)) as load:
        time.sleep(1)
        result = platform.run_deploy()
        time.sleep(1)
    assert result.returncode == 0, result.output[-5000:]
    print(f"code deploy: {load.per_url()} requests, {len(load.failed())} failed")  # shown with -s
    assert load.failed() == [] and min(load.per_url().values()) > 10, (load.failed()[:10], load.per_url())
    _assert_drained_batch_by_batch(platform, ssh, nodes)
    head = app_repo.head()
    for name in backends:
        assert _running(ssh, name).endswith(head), name


def _running(ssh, name) -> str:
    return ssh(name, "readlink /proc/$(systemctl show -p MainPID --value sprint2-app)/cwd")[1].strip()


def _assert_drained_batch_by_batch(platform, ssh, nodes):
    targets = [f"{platform.address(name)}:8080" for name in platform.names("backend")]
    for name in nodes:
        calls = [(target, health) for _, target, health, *_ in _container_file(ssh, name, "/tmp/admin-calls")]
        # Batch by batch (switch_batch_size 1): drained, switched, restored, then the next.
        assert calls == [
            (targets[0], "unhealthy"),
            (targets[0], "healthy"),
            (targets[1], "unhealthy"),
            (targets[1], "healthy"),
        ], (name, calls)


def test_a_second_deploy_changes_nothing(platform, nodes):
    started = time.monotonic()
    again = platform.run_deploy()
    print(f"no-change deploy (db, 2 backends, 2 Kong nodes): {time.monotonic() - started:.1f} s")  # shown with -s
    assert again.returncode == 0, again.output[-4000:]
    again.assert_no_changes()


def test_a_rollback_under_load_through_kong_fails_no_request(platform, ssh, nodes):
    before = {name: _running(ssh, name) for name in platform.names("backend")}
    for name in nodes:
        ssh(name, "docker exec kong sh -c ': > /tmp/admin-calls'")
    with Load(_urls(platform, nodes)) as load:
        time.sleep(1)
        result = platform.run_rollback()
        time.sleep(1)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    print(f"rollback: {load.per_url()} requests, {len(load.failed())} failed")  # shown with -s
    assert load.failed() == [] and min(load.per_url().values()) > 10, (load.failed()[:10], load.per_url())
    _assert_drained_batch_by_batch(platform, ssh, nodes)
    for name, release in before.items():
        assert _running(ssh, name) != release, name
