"""The end-to-end library: real local hosts (systemd-nspawn) driven through the real provision.py
and pyinfra CLIs, and the test app served to them from a git daemon on the bridge.

conftest.py turns it into fixtures; bench/converge.py uses AppRepo. (Not named platform.py: pytest
puts tests/e2e first on sys.path, where that name would hide Python's own platform module.)

Platform: .prefix, .ip(last_octet) (an address in the subnet), .home (DEPLOY_HOME), .config_path,
  .env (for subprocesses), .base_config (dict), .hosts (name -> state record, read fresh),
  .names(role) ("db" | "backend" | "kong"), .address(name), .write_config(**overrides) (no
  provisioning), .use_base_config(dict), .fresh (no real deploy yet), .recreate_hosts() (destroy and
  provision again: fresh hosts), .ensure_deployed(), .start_deploy(*extra_args) -> Popen (a deploy in
  the background, in its own process group).
CommandResult: .returncode .stdout .stderr .output (both).
DeployResult (from pyinfra's --json on stdout; human log and --diff output on stderr):
  .returncode .stdout .stderr .output .payload (parsed JSON or None) .dry
  .changed {host: [operation names]} (a real run: changed; a --dry run: would change)
  .conditional {host: [names]} (--dry only: may change, depends on an earlier change)
  .errors {host: [names]}  .no_change {host: [names]}  .failed_hosts [names]
  .completed(host) -> {names that succeeded, changed or not}
  .changed_operations(hosts=None) -> ["host: operation", ...]
  .assert_no_changes(hosts=None, ignore=()): fails naming every changed operation not in `ignore`.
  Platform.never_completed(result) -> ["host: operation", ...] the failed hosts' operations that
  did not succeed in `result` (a later --dry still plans them: Kong's image is never present here).
AppRepo: .url (git://<bridge>/testapp.git), .push_commit(message, files) -> sha (files: {relative
  path: text, or None to delete}), .head(), .sprint2_url (the real Sprint2 repository, from
  tests/fixtures/sprint2.bundle).
deploy_ok(platform, run_deploy, *args): a deploy that must succeed on every host but Kong.
session_lock(what): one session per prefix and per subnet (a second one stops with one line).

What the tests read on the hosts (SQL, HTTP, the running release): host_checks.py.
"""

import copy
import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TESTAPP = ROOT / "tests" / "testapp"
# The real Sprint2 repository, whole history (a copy of ../shared/fixtures/sprint2.bundle).
SPRINT2_BUNDLE = ROOT / "tests" / "fixtures" / "sprint2.bundle"
PYTHON = sys.executable
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
# Two sessions on one prefix or subnet would destroy each other's hosts: override both to run
# a second session at the same time (a lock refuses a collision).
PREFIX = os.environ.get("E2E_PREFIX", "e2e")
SUBNET = os.environ.get("E2E_SUBNET", "10.78.0.0/24")
BRIDGE_ADDRESS = str(ipaddress.IPv4Network(SUBNET)[1])
LOCKS = Path("/run/sprint2-stack")
# The distribution of the hosts (local_distro): CI runs the suite on bookworm and a chosen part
# of it again on trixie (.ci/run, README's testing section).
DISTRO = os.environ.get("E2E_DISTRO", "bookworm")
BASE_CONFIG = {
    "project_prefix": PREFIX,
    "local_subnet": SUBNET,
    "local_distro": DISTRO,
    "backends": ["a", "b"],
    "app_repo": f"git://{BRIDGE_ADDRESS}/testapp.git",
    "app_ref": "main",
}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "e2e",
    "GIT_AUTHOR_EMAIL": "e2e@localhost",
    "GIT_COMMITTER_NAME": "e2e",
    "GIT_COMMITTER_EMAIL": "e2e@localhost",
}


@dataclass
class CommandResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class DeployResult(CommandResult):
    args: tuple = ()
    dry: bool = False
    payload: dict | None = None
    changed: dict = field(default_factory=dict)
    conditional: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    no_change: dict = field(default_factory=dict)
    failed_hosts: list = field(default_factory=list)

    @classmethod
    def from_run(cls, args, dry, completed) -> "DeployResult":
        result = cls(completed.returncode, completed.stdout, completed.stderr, tuple(args), dry)
        try:
            result.payload = json.loads(completed.stdout)
        except ValueError:
            return result  # pyinfra stopped before its report (e.g. bad settings): see .output
        for operation in result.payload.get("plan") or []:
            if dry:
                for host in operation["hosts_with_change"]:
                    result.changed.setdefault(host, []).append(operation["name"])
                for host in operation["hosts_with_conditional_change"]:
                    result.conditional.setdefault(host, []).append(operation["name"])
        results = result.payload.get("results")
        if results:
            for operation in results["operations"]:
                for host in operation["success"]:
                    result.changed.setdefault(host, []).append(operation["name"])
                for host in operation["error"]:
                    result.errors.setdefault(host, []).append(operation["name"])
                for host in operation["no_change"]:
                    result.no_change.setdefault(host, []).append(operation["name"])
            result.failed_hosts = list(results["failed_hosts"])
        return result

    def completed(self, host: str) -> set[str]:
        """Operations that ran to success on `host` (changed or not); a failed host stops early."""
        return set(self.changed.get(host, [])) | set(self.no_change.get(host, []))

    def changed_operations(self, hosts=None) -> list[str]:
        return [
            f"{host}: {name}"
            for host, names in sorted(self.changed.items())
            if hosts is None or host in hosts
            for name in names
        ]

    def assert_no_changes(self, hosts=None, ignore=()) -> None:
        """Fails naming every changed operation ("host: name"), except those listed in `ignore`."""
        changed = [operation for operation in self.changed_operations(hosts) if operation not in ignore]
        verb = "would change" if self.dry else "changed"
        assert not changed, f"{len(changed)} operations {verb}:\n  " + "\n  ".join(changed)


class AppRepo:
    """The test app as a git repository (a work tree and a bare repo served by git daemon), and
    beside it the real Sprint2 repository from its bundle (.sprint2_url)."""

    def __init__(self, base: Path, address: str = BRIDGE_ADDRESS):
        self.work = base / "testapp"
        self.served = base / "served"
        self.bare = self.served / "testapp.git"
        self.address = address
        self.url = f"git://{address}/testapp.git"
        self.sprint2_url = f"git://{address}/sprint2.git"
        self.served.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(SPRINT2_BUNDLE), str(self.served / "sprint2.git")], check=True
        )
        self.daemon: subprocess.Popen | None = None
        shutil.copytree(TESTAPP, self.work, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self._git("init", "-q", "-b", "main")
        self._git("add", "-A")
        self._git("commit", "-q", "-m", "Test app")
        subprocess.run(["git", "init", "-q", "--bare", str(self.bare)], check=True)
        self._git("push", "-q", str(self.bare), "main")

    def _git(self, *args) -> str:
        completed = subprocess.run(
            ["git", *args],
            cwd=self.work,
            env={**os.environ, **GIT_IDENTITY},
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        return completed.stdout.strip()

    def head(self) -> str:
        return self._git("rev-parse", "HEAD")

    def push_commit(self, message: str, files: dict[str, str | None] | None = None) -> str:
        """Commit `files` (path -> new text, None = delete) on main, push it, return the new sha."""
        for relative, text in (files or {}).items():
            path = self.work / relative
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)
        self._git("push", "-q", str(self.bare), "main")
        return self.head()

    def serve(self) -> None:
        """(Re)start git daemon on the bridge address (the bridge must exist)."""
        self.stop()
        self.daemon = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                f"--base-path={self.served}",
                f"--listen={self.address}",
                str(self.served),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(50):
            probe = subprocess.run(["git", "ls-remote", self.url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if probe.returncode == 0:
                return
            if self.daemon.poll() is not None:
                break
            subprocess.run(["sleep", "0.2"])
        raise RuntimeError(f"git daemon does not serve {self.url}")

    def stop(self) -> None:
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None


class Platform:
    def __init__(self, base: Path):
        self.home = base / "deploy-home"
        self.config_path = base / "config.yml"
        self.prefix = PREFIX
        self.base_config = copy.deepcopy(BASE_CONFIG)
        self.env = {
            **os.environ,
            "DEPLOY_HOME": str(self.home),
            "DEPLOY_CONFIG": str(self.config_path),
            "PYTHONUNBUFFERED": "1",
        }
        self.app_repo = AppRepo(base)
        self._deployed: DeployResult | None = None
        self.fresh = False  # True while no real deploy has run on the current hosts
        self.write_config()

    # --- commands --------------------------------------------------------------------------

    def _run(self, command, timeout) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )

    def provision(self, *args) -> CommandResult:
        completed = self._run([PYTHON, "provision.py", "--provider", "local", *args], timeout=900)
        return CommandResult(completed.returncode, completed.stdout, completed.stderr)

    def operate(self, *args, timeout: int = 120) -> subprocess.CompletedProcess:
        """provision.py with the session's DEPLOY_HOME and no --provider (the state says which)."""
        return self._run([PYTHON, "provision.py", *args], timeout=timeout)

    def run_rollback(self, *args, timeout: int = 900) -> subprocess.CompletedProcess:
        return self._run([PYINFRA, "-y", "inventory.py", "rollback.py", *args], timeout=timeout)

    def run_deploy(self, *extra_args) -> DeployResult:
        dry = "--dry" in extra_args
        command = [PYINFRA, *([] if dry else ["-y"]), "--json", "inventory.py", "deploy.py", *extra_args]
        self.fresh = self.fresh and dry
        return DeployResult.from_run(extra_args, dry, self._run(command, timeout=1800))

    def start_deploy(self, *extra_args) -> subprocess.Popen:
        """A deploy running in the background (to interrupt it): its own process group."""
        self.fresh = False
        return subprocess.Popen(
            [PYINFRA, "-y", "inventory.py", "deploy.py", *extra_args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def ssh_argv(self, host_name: str, command: str, as_root: bool = True) -> list[str]:
        """ssh to a host as its recorded login user, with the project's key and its pinned host key
        only; `command` runs as root through `sudo -n` (the production path), or as the login user."""
        host = self.hosts[host_name]
        known_hosts = self.home / "ssh" / "known_hosts"
        options = ["BatchMode=yes", "StrictHostKeyChecking=yes", f"UserKnownHostsFile={known_hosts}", "LogLevel=ERROR"]
        if as_root and host["ssh_user"] != "root":
            command = f"sudo -n bash -c {shlex.quote(command)}"
        return [
            "ssh",
            "-i",
            host["ssh_key"],
            *(f"-o{option}" for option in options),
            f"{host['ssh_user']}@{host['private_ip']}",
            command,
        ]

    def ssh(self, host_name: str, command: str, timeout: float = 300, as_root: bool = True) -> tuple[int, str]:
        completed = subprocess.run(
            self.ssh_argv(host_name, command, as_root),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        return completed.returncode, completed.stdout

    # --- configuration and hosts -------------------------------------------------------------

    def write_config(self, **overrides) -> None:
        self.config_path.write_text(yaml.safe_dump(_merge(self.base_config, overrides), sort_keys=False))

    def use_base_config(self, config: dict) -> None:
        """Another base configuration from now on (rewrite_config() then restores this one)."""
        self.base_config = copy.deepcopy(config)
        self.write_config()

    def rewrite_config(self, **overrides) -> CommandResult:
        self.write_config(**overrides)
        return self.provision("--yes")

    @property
    def hosts(self) -> dict:
        path = self.home / "state.json"
        return json.loads(path.read_text())["hosts"] if path.exists() else {}

    def ip(self, last_octet: int) -> str:
        return str(ipaddress.IPv4Network(SUBNET)[last_octet])

    def names(self, role: str) -> list[str]:
        return sorted(name for name, host in self.hosts.items() if host["role"] == role)

    def address(self, name: str) -> str:
        return self.hosts[name]["private_ip"]

    def up(self) -> None:
        result = self.provision("--yes")
        assert result.returncode == 0, f"provisioning failed:\n{result.output}"
        self.fresh = True
        self.app_repo.serve()

    def down(self) -> CommandResult:
        self.app_repo.stop()
        result = self.provision("destroy", "--yes")
        self._sweep()
        return result

    def _sweep(self) -> None:
        """Remove hosts and the bridge an interrupted provision.py may have left unrecorded."""
        from stack.local import machines, network

        leftovers = [path.name for path in machines.MACHINES.glob(f"{PREFIX}-*")] if machines.MACHINES.exists() else []
        machines.stop({name: None for name in leftovers})
        for name in leftovers:
            machines.remove(name)
        network.remove_network(network.bridge_name(PREFIX), SUBNET)

    def recreate_hosts(self) -> None:
        """Fresh hosts (destroyed and booted again from the base image); forgets the deploy."""
        result = self.down()
        assert result.returncode == 0, f"destroy failed:\n{result.output}"
        self._deployed = None
        self.up()

    def never_completed(self, result: DeployResult) -> list[str]:
        plan = self.run_deploy("--dry").changed
        return [
            f"{host}: {name}"
            for host in result.failed_hosts
            for name in plan.get(host, [])
            if name not in result.completed(host)
        ]

    def ensure_deployed(self) -> DeployResult:
        if self._deployed is None:
            self._deployed = self.run_deploy()  # kept even when it failed: one slow attempt per hosts
        result = self._deployed
        bad = [name for name in result.failed_hosts if name not in self.names("kong")]
        assert result.payload is not None and not bad, (
            f"first deploy failed on {bad or 'all hosts'}:\n{result.output[-6000:]}"
        )
        return result


def deploy_ok(platform: "Platform", run_deploy, *args) -> DeployResult:
    """A deploy that must succeed on every host but Kong (whose image cannot be pulled here)."""
    result = run_deploy(*args)
    assert result.payload is not None, result.output[-4000:]
    bad = [name for name in result.failed_hosts if name not in platform.names("kong")]
    assert not bad, result.output[-6000:]
    return result


def _merge(base: dict, overrides: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def session_lock(what: str) -> IO[str]:
    """Hold an exclusive lock for the session, or stop with one line saying what collides."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    # Not closed here: the lock is held as long as the file is open, until the session ends.
    handle = open(LOCKS / f"e2e-{what.replace('/', '_').replace(' ', '-')}.lock", "a+")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pytest.exit(
            f"another e2e session (pid {handle.read().strip() or '?'}) uses {what}: wait for it, or "
            f"set E2E_PREFIX and E2E_SUBNET (e.g. E2E_PREFIX=e2e2 E2E_SUBNET=10.88.0.0/24)",
            returncode=3,
        )
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
