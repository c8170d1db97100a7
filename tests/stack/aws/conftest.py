"""One moto server (real HTTP, AWS_ENDPOINT_URL) for the whole session, reset before each test.

MOTO_AMIS_PATH must be set before moto is imported (in the server's process, which inherits it):
moto has no Ubuntu 24.04 image, so the session's image list holds Canonical noble builds (and
decoys the lookup must skip).
"""

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs

import pytest

_SCRATCH_DIR = tempfile.TemporaryDirectory(prefix="moto-")  # removed when the test run ends
_SCRATCH = Path(_SCRATCH_DIR.name)
CANONICAL = "099720109477"
NEWEST_NOBLE = "ami-0aa0000000000000a"


def _image(ami_id, name, owner=CANONICAL, architecture="x86_64", created="2025-01-01T00:00:00.000Z"):
    return {
        "ami_id": ami_id,
        "name": name,
        "description": name,
        "owner_id": owner,
        "public": True,
        "virtualization_type": "hvm",
        "architecture": architecture,
        "state": "available",
        "platform": None,
        "image_type": "machine",
        "hypervisor": "xen",
        "root_device_name": "/dev/sda1",
        "root_device_type": "ebs",
        "sriov": "simple",
        "creation_date": created,
    }


IMAGES = [
    _image(
        "ami-0aa00000000000001",
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101",
        created="2025-01-01T00:00:00.000Z",
    ),
    _image(
        NEWEST_NOBLE,
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251001",
        created="2025-10-01T00:00:00.000Z",
    ),
    # decoys: newer, but arm64 / another owner / another release
    _image(
        "ami-0bb00000000000001",
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20251101",
        architecture="arm64",
        created="2025-11-01T00:00:00.000Z",
    ),
    _image(
        "ami-0cc00000000000001",
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251201",
        owner="111122223333",
        created="2025-12-01T00:00:00.000Z",
    ),
    _image(
        "ami-0dd00000000000001",
        "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20251201",
        created="2025-12-01T00:00:00.000Z",
    ),
    _image(
        "ami-0ee00000000000001",
        "amzn2-ami-hvm-2.0-x86_64-gp2",
        owner="137112412989",
        created="2025-12-01T00:00:00.000Z",
    ),
]
(_SCRATCH / "amis.json").write_text(json.dumps(IMAGES))
os.environ["MOTO_AMIS_PATH"] = str(_SCRATCH / "amis.json")
os.environ["MOTO_RECORDER_FILEPATH"] = str(_SCRATCH / "recording.jsonl")

import boto3  # noqa: E402
import requests  # noqa: E402

import provision  # noqa: E402
from stack.aws.clients import Clients  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
READ_ONLY = ("Describe", "List", "Get")


@pytest.fixture(scope="session")
def moto_url():
    """One moto server (moto.server.ThreadedMotoServer) for the session, in a process of its own."""
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("moto_serve.py"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    host, port = server.stdout.readline().split()
    yield f"http://{host}:{port}"
    server.stdin.close()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()


class Recorder:
    """moto's request recorder: every request the server received, named by its AWS operation."""

    def __init__(self, url: str):
        self.url = url

    def start(self) -> None:
        requests.post(f"{self.url}/moto-api/recorder/reset-recording").raise_for_status()
        requests.post(f"{self.url}/moto-api/recorder/start-recording").raise_for_status()

    def operations(self) -> list[str]:
        requests.post(f"{self.url}/moto-api/recorder/stop-recording").raise_for_status()
        text = requests.get(f"{self.url}/moto-api/recorder/download-recording").text
        names = []
        for line in text.splitlines():
            entry = json.loads(line)
            target = entry["headers"].get("X-Amz-Target")
            if target:
                names.append(target.rsplit(".", 1)[-1])
                continue
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode()
            names.append(parse_qs(body).get("Action", ["?"])[0])
        return names

    def mutating(self) -> list[str]:
        return [name for name in self.operations() if not name.startswith(READ_ONLY)]


class _Http:
    def __init__(self, status: int):
        self.status_code = status
        self.headers = {}
        self.content = b""


class Aws:
    """The test's view: config, clients on moto, provision.py in-process or as a subprocess."""

    def __init__(self, url: str, home: Path, config: Path):
        self.url, self.home, self.config = url, home, config
        self.recorder = Recorder(url)
        self._clients: dict[str, object] = {}
        self._injected: list[tuple] = []
        self.configure()

    def cleanup(self) -> None:
        for client, event, unique_id in self._injected:
            client.meta.events.unregister(event, unique_id=unique_id)

    def configure(self, **settings) -> None:
        values = {"project_prefix": "des", "region": "us-east-1", **settings}
        self.config.write_text(json.dumps(values))  # JSON is YAML

    def inject(self, monkeypatch, operation: str, code: str, message: str, skip: int = 0, times: int = 99, hook=None):
        """Make provision.py's clients answer `operation` with AWS error `code` (after `skip` real
        calls, `times` times); every other call still goes to moto. `hook(params)` instead runs a check."""
        calls = {"seen": 0, "off": False}  # set "off" to let every call through again

        def answer(params, **_):
            if calls["off"]:
                return None
            if hook:
                return hook(params)
            calls["seen"] += 1
            if skip < calls["seen"] <= skip + times:
                error = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
                return _Http(400), error
            return None

        original = Clients.make

        def make(clients, service):
            client = original(clients, service)
            if operation in client.meta.service_model.operation_names:
                event = f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"
                # clients are shared between tests (see cached_clients): unregistered at teardown
                client.meta.events.register(event, answer, unique_id=f"inject-{id(calls)}")
                self._injected.append((client, event, f"inject-{id(calls)}"))
            return client

        monkeypatch.setattr(Clients, "make", make)
        return calls

    def consoles(self, monkeypatch, answer):
        """Answer provision.py's GetConsoleOutput (moto's is made-up text) with `answer(name, n)`: the
        console text of instance `name` at its n-th read (from 1), or None for no output yet."""
        reads: dict[str, int] = {}

        def hook(params):
            instance_id = params["body"]["InstanceId"]
            raw = self.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
            name = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}["Name"]
            reads[name] = reads.get(name, 0) + 1
            text = answer(name, reads[name])
            parsed = {"InstanceId": instance_id, "Timestamp": "2026-12-06T19:02:41.000Z"}
            if text is not None:  # botocore's after-call handler base64-decodes it, as AWS sends it
                parsed["Output"] = base64.b64encode(text.encode()).decode()
            return _Http(200), parsed

        self.inject(monkeypatch, "GetConsoleOutput", "", "", hook=hook)
        return reads

    def rewrite(self, monkeypatch, operation: str, change):
        """`change(parsed)` edits every answer to `operation` that provision.py's clients receive."""
        original = Clients.make

        def handler(parsed, **_):
            change(parsed)

        def make(clients, service):
            client = original(clients, service)
            if operation in client.meta.service_model.operation_names:
                event = f"after-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"
                client.meta.events.register(event, handler, unique_id=f"rewrite-{id(change)}")
                self._injected.append((client, event, f"rewrite-{id(change)}"))
            return client

        monkeypatch.setattr(Clients, "make", make)

    def client(self, service: str):
        """The test's own client (one per service and test: making EC2's is costly)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name="us-east-1")
        return self._clients[service]

    def run(self, *args: str) -> tuple[int, str, str]:
        """provision.main(args) in this process: (exit status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = provision.main(list(args)) or 0
            except SystemExit as leaving:
                code = leaving.code
        return code, out.getvalue(), err.getvalue()

    def cli(self, *args: str, env: dict | None = None, without: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """python provision.py args, as a user runs it (`without`: variables to leave out)."""
        environment = {name: value for name, value in os.environ.items() if name not in without}
        return subprocess.run(
            [sys.executable, str(ROOT / "provision.py"), *args],
            cwd=ROOT,
            env={**environment, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def instances(self, *states: str) -> dict[str, dict]:
        """Name -> raw instance of the project (live ones unless states are given)."""
        states = states or ("pending", "running", "stopping", "stopped")
        found = {}
        pages = (
            self.client("ec2")
            .get_paginator("describe_instances")
            .paginate(
                Filters=[
                    {"Name": "tag:Project", "Values": ["des"]},
                    {"Name": "instance-state-name", "Values": list(states)},
                ]
            )
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for raw in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
                    found[tags["Name"]] = {**raw, "TagMap": tags}
        return found

    def groups(self) -> dict[str, dict]:
        found = self.client("ec2").describe_security_groups(Filters=[{"Name": "tag:Project", "Values": ["des"]}])[
            "SecurityGroups"
        ]
        return {group["GroupName"]: group for group in found}

    def state(self) -> dict | None:
        path = self.home / "state.json"
        return json.loads(path.read_text()) if path.exists() else None


def _follow_gevent_ssl() -> None:
    """Other test modules import pyinfra_cli, whose gevent.monkey.patch_all() replaces ssl.SSLContext
    after botocore and urllib3 took the original class; contexts made from that class then recurse
    forever (gevent issue 1016). Point them at the class ssl has now."""
    import ssl

    import botocore.httpsession
    import urllib3.util.ssl_

    for module in (botocore.httpsession, urllib3.util.ssl_):
        if module.SSLContext is not ssl.SSLContext:
            module.SSLContext = ssl.SSLContext


_SHARED: dict[tuple, object] = {}


def cached_clients(monkeypatch) -> None:
    """Share provision.py's boto3 clients between runs of the session: making one (EC2's has 600
    methods) costs more CPU than the calls of a run. Keyed by everything that shapes a client."""
    original = Clients.make

    def make(clients, service):
        if service not in clients._made:
            key = (
                service,
                clients.region,
                id(clients.config),
                os.environ.get("AWS_ENDPOINT_URL"),
                os.environ.get("AWS_ACCESS_KEY_ID"),
                os.environ.get("AWS_SECRET_ACCESS_KEY"),
            )
            if key not in _SHARED:
                _SHARED[key] = original(clients, service)
            clients._made[service] = _SHARED[key]
        return clients._made[service]

    monkeypatch.setattr(Clients, "make", make)


@pytest.fixture
def aws(moto_url, tmp_path, monkeypatch, request):
    _follow_gevent_ssl()
    cached_clients(monkeypatch)
    requests.post(f"{moto_url}/moto-api/reset").raise_for_status()
    home, config = tmp_path / "deploy", tmp_path / "config.yml"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("DEPLOY_HOME", str(home))
    monkeypatch.setenv("DEPLOY_CONFIG", str(config))
    monkeypatch.setattr("stack.aws.instances.POLL_SECONDS", 0.005)
    monkeypatch.setattr("stack.aws.groups.PATIENCE_SECONDS", 1)
    monkeypatch.setattr("stack.aws.groups.RETRY_SECONDS", 0.05)
    view = Aws(moto_url, home, config)
    request.addfinalizer(view.cleanup)
    return view
