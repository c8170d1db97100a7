"""Releases under load (issue 9): a code-changing deploy and a rollback while every backend is asked
20 times a second; a release that fails its health check; scale-in removing the setup backend.

Runs on the session's deployed hosts with the small test app (tests/testapp). Kong cannot run here,
so the load goes straight to each backend on the bridge: a request a backend drops is counted, none
is retried elsewhere as Kong would.
"""

import http.client
import threading
import time
from collections import Counter

import pytest

from tests.e2e.host_checks import RUNNING, DeployLockHolder, TableLock, deploy_lock, pip_freeze
from tests.e2e.local_platform import deploy_ok

pytestmark = pytest.mark.e2e

PORT = 8080
P99_S = 0.3  # issue 22: what a client may wait during a switch, at the 99th percentile
VIEWS = "despachos/views.py"


class Load:
    """A bounded load loop: each backend gets a request every 0.1 s (a new connection, 10 s timeout),
    and every 0.5 s a sampler counts the backends answering the health path with 200."""

    def __init__(self, addresses: dict[str, str], path: str = "/despachos/reporte/", limit_s: float = 600):
        self.addresses, self.path, self.limit_s = addresses, path, limit_s
        self.results: dict[str, Counter] = {name: Counter() for name in addresses}
        self.samples: list[int] = []
        self.seconds: list[float] = []  # each request's time, connection to answer
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._hammer, args=(name,), daemon=True) for name in addresses]
        self.threads.append(threading.Thread(target=self._sample, daemon=True))

    def _ask(self, address: str) -> str:
        try:
            connection = http.client.HTTPConnection(address, PORT, timeout=10)
            connection.request("GET", self.path, headers={"Host": address})
            status = connection.getresponse().status
            connection.close()
            return str(status)
        except ConnectionRefusedError:
            return "refused"
        except ConnectionResetError:
            return "reset"
        except OSError as error:
            return type(error).__name__

    def _hammer(self, name: str) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self.stopping.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            self.results[name][self._ask(self.addresses[name])] += 1
            self.seconds.append(time.monotonic() - started)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))

    def _sample(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self.stopping.is_set() and time.monotonic() < deadline:
            answers = [self._ask(address) for address in self.addresses.values()]
            self.samples.append(sum(answer == "200" for answer in answers))
            time.sleep(0.5)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        time.sleep(1)
        return self

    def __exit__(self, *problem):
        time.sleep(1)
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def failed(self, names=None) -> dict:
        return {
            name: {status: count for status, count in counter.items() if status != "200"}
            for name, counter in self.results.items()
            if names is None or name in names
        }

    def quantile(self, share: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def report(self, what: str) -> str:
        total = sum(sum(counter.values()) for counter in self.results.values())
        failures = sum(sum(values.values()) for values in self.failed().values())
        return (
            f"{what}: {total} requests, {failures} failed {self.failed()}, "
            f"healthy backends per sample min {min(self.samples)} of {len(self.addresses)}, "
            f"latency median {self.quantile(0.5):.3f} s, p99 {self.quantile(0.99):.3f} s, "
            f"slowest {max(self.seconds):.3f} s"
        )


def running(platform, ssh) -> dict:
    return {name: ssh(name, RUNNING)[1].strip() for name in platform.names("backend")}


def test_a_release_and_a_rollback_under_load_drop_no_request(platform, run_deploy, app_repo, deployed, ssh):
    backends = platform.names("backend")
    before = running(platform, ssh)
    assert len(set(before.values())) == 1, before
    views = (app_repo.work / VIEWS).read_text()
    sha = app_repo.push_commit("Report: a release marker", {VIEWS: views + "\n# release under load\n"})

    preview = run_deploy("--dry")
    assert any("Switch to the release of main" in name for name in preview.changed.get(backends[0], [])), (
        preview.changed
    )

    with Load({name: platform.address(name) for name in backends}) as load:
        deploy_ok(platform, run_deploy)
    print("\n" + load.report(f"deploy of {sha[:12]}"))
    assert load.failed() == {name: {} for name in backends}, load.report("deploy")
    assert min(load.samples) >= len(backends) - 1
    # The old gunicorn serves until the new one has imported Django (tasks/backend/switch.py).
    assert load.quantile(0.99) <= P99_S, load.report("deploy")
    assert set(running(platform, ssh).values()) == {sha}

    with Load({name: platform.address(name) for name in backends}) as load:
        result = platform.run_rollback()
    print(load.report("rollback"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert load.failed() == {name: {} for name in backends}, load.report("rollback")
    assert min(load.samples) >= len(backends) - 1
    assert load.quantile(0.99) <= P99_S, load.report("rollback")
    assert running(platform, ssh) == before

    # Forward again: the deploy converges on what runs (the rollback left `current` on the old one).
    deploy_ok(platform, run_deploy)
    assert set(running(platform, ssh).values()) == {sha}
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + backends)


def test_a_release_failing_its_health_check_never_serves_and_stops_the_roll(
    platform, run_deploy, app_repo, deployed, ssh
):
    backends = platform.names("backend")
    before = running(platform, ssh)
    views = (app_repo.work / VIEWS).read_text()
    # Imports, migrates and starts fine; only the health path fails (at import time it would already
    # stop the deploy at makemigrations, before any switch).
    broken = views + "\n\ndef reporte_productos_despachados(request):  # noqa: F811\n    raise RuntimeError('broken')\n"
    bad = app_repo.push_commit("Report: broken", {VIEWS: broken})
    try:
        with Load({name: platform.address(name) for name in backends}) as load:
            result = run_deploy()
        print("\n" + load.report(f"deploy of the broken {bad[:12]}"))
        assert result.returncode != 0
        # Tried on every backend at once, before the first batch: each names itself.
        for name in backends:
            line = (
                f"{name}: release {bad[:12]} answered 500 on /despachos/reporte/ (tried on 127.0.0.1:18080, "
                "beside the running release); nothing switched; the roll stopped here"
            )
            assert line in result.stderr, result.stderr[-4000:]
        assert running(platform, ssh) == before
        # The broken release was tried beside the running one: no client request ever reached it.
        assert load.failed() == {name: {} for name in backends}, load.report("broken")
        assert min(load.samples) == len(backends)
        for name in backends:
            assert ssh(name, "ss -Hltn 'sport = :18080'")[1].strip() == "", (
                f"{name}: the trial gunicorn was left running"
            )
    finally:
        app_repo.push_commit("Report: fixed", {VIEWS: views})
    deploy_ok(platform, run_deploy)
    assert len(set(running(platform, ssh).values())) == 1


def test_a_second_deploy_meanwhile_stops_naming_the_holder_and_unlock_clears_a_dead_ones(
    platform, run_deploy, provision, app_repo, deployed, ssh
):
    (db,) = platform.names("db")
    views = (app_repo.work / VIEWS).read_text()
    app_repo.push_commit("Report: a release to roll out", {VIEWS: views + "\n# rolled out while locked\n"})
    # Without Kong (its image cannot be pulled here, which would fail the run): a release takes a while.
    first = platform.start_deploy("--limit", "backends")
    try:
        deadline = time.monotonic() + 120
        while not deploy_lock(ssh, db)["host"]:
            assert time.monotonic() < deadline and first.poll() is None, "the first deploy never took the lock"
            time.sleep(0.2)
        second = run_deploy()
        assert second.returncode != 0
        lines = [line for line in second.stderr.splitlines() if "another deploy holds the lock" in line]
        assert len(lines) == 1 and "deploying main since" in lines[0], second.stderr[-2000:]
        assert "Traceback" not in second.stderr
        assert run_deploy("--dry").returncode == 0  # a preview takes no lock
    finally:
        assert first.wait(timeout=900) == 0, first.stdout.read()[-4000:]
    assert deploy_lock(ssh, db) == {"host": None, "advisory": None}, "the finished deploy left its lock"
    # A run that hangs holding it: unlock says whose it was and ends its session.
    stuck = DeployLockHolder(platform, db, "ghost@gone (pid 9, run dead) deploying main since then")
    try:
        blocked = run_deploy()
        assert blocked.returncode != 0 and "ghost@gone" in blocked.stderr
        released = provision("unlock")
        assert released.returncode == 0 and "released: ghost@gone" in released.stdout
    finally:
        stuck.end()
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + platform.names("backend"))


def test_a_deploy_killed_during_migrate_is_finished_by_the_next_one(platform, run_deploy, app_repo, deployed, ssh):
    """pyinfra SIGKILLed while migrate waits (a lock held on django_migrations): no backend switched;
    after unlock the next run migrates, switches every backend, and a further run changes nothing."""
    import os
    import signal

    backends = platform.names("backend")
    before = running(platform, ssh)
    models = (app_repo.work / "pedidos" / "models.py").read_text()
    sha = app_repo.push_commit(
        "Pedido: prioridad",
        {
            "pedidos/models.py": models.replace(
                "    cantidad = models.PositiveIntegerField()\n",
                "    cantidad = models.PositiveIntegerField()\n    prioridad = models.IntegerField(default=0)\n",
            )
        },
    )
    with TableLock(platform, ssh, "django_migrations") as lock:
        deploy = platform.start_deploy()
        try:
            lock.wait_for_a_blocked_writer()
            os.killpg(deploy.pid, signal.SIGKILL)
        finally:
            deploy.wait(timeout=60)
    assert running(platform, ssh) == before, "a backend switched before the database was set up"
    assert platform.provision("unlock").returncode == 0
    deploy_ok(platform, run_deploy)
    assert set(running(platform, ssh).values()) == {sha}
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + backends)


def test_without_backend_a_a_model_change_migrates_from_the_history_kept_in_the_database(
    platform, run_deploy, rewrite_config, app_repo, deployed, ssh
):
    """Scale-in removing the setup backend: the next first backend restores the generated migration
    history from the database, so only the new migration is made and applied."""
    backends = platform.names("backend")
    (db,) = platform.names("db")
    try:
        assert rewrite_config(backends=["b"]).returncode == 0
        models = (app_repo.work / "pedidos" / "models.py").read_text()
        sha = app_repo.push_commit(
            "Pedido: canal",
            {
                "pedidos/models.py": models.replace(
                    "    cantidad = models.PositiveIntegerField()\n",
                    "    cantidad = models.PositiveIntegerField()\n"
                    "    canal = models.CharField(max_length=10, default='web')\n",
                )
            },
        )
        deploy_ok(platform, run_deploy)
        (only,) = platform.names("backend")
        assert only == backends[1] and ssh(only, RUNNING)[1].strip() == sha
        columns = ssh(
            db,
            'cd / && runuser -u postgres -- psql -XtA -d dispatch_db -c "SELECT column_name FROM '
            "information_schema.columns WHERE table_name = 'pedidos_pedido'\"",
        )[1].split()
        assert "canal" in columns
    finally:
        assert rewrite_config().returncode == 0
    deploy_ok(platform, run_deploy)
    assert set(running(platform, ssh).values()) == {sha}
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + platform.names("backend"))


def test_every_backend_of_a_release_holds_the_same_packages_from_the_kept_lock(platform, deployed, ssh):
    """Built from one lock (tasks/backend/lock.py): the same `pip freeze`, byte for byte, and root's
    copy of the lock on each backend is the controller's."""
    from tasks.backend.layout import LAYOUT
    from tasks.backend.lock import digest, kept_lock

    commit = running(platform, ssh)[platform.names("backend")[0]]
    lock = kept_lock(commit)
    assert lock and "--hash=sha256:" in lock
    frozen = {}
    for name in platform.names("backend"):
        frozen[name] = pip_freeze(ssh, name)
        assert ssh(name, f"readlink -f {LAYOUT.venv}")[1].strip() == f"{LAYOUT.venvs}/{digest(lock)}"
        assert ssh(name, f"cat {LAYOUT.locks}/{digest(lock)}.txt")[1] == lock
    print("\n" + "\n".join(f"{name}: {len(text.splitlines())} packages" for name, text in frozen.items()))
    assert len(set(frozen.values())) == 1, frozen
    assert "gunicorn==27.0.1" in next(iter(frozen.values())).splitlines()
