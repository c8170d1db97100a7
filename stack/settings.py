"""The one settings loader: defaults, validation and the path of the settings file.

Every setting lives in SCHEMA below with its default and a one-line description; config.example.yml
documents the same keys for users (a test keeps the two in step). `load_settings()` reads
`config.yml` (or the file named by DEPLOY_CONFIG), refuses unknown keys, wrong types and bad values
with one line naming the key path, and returns read-only `Settings`.
"""

import ipaddress
import os
import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from stack.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yml"

# Matched against the whole value (re.fullmatch): with `$` and re.match a trailing newline passed,
# and "dispatch_db\n" wrote a broken line into pg_hba.conf.
NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
BACKEND_KEY = re.compile(r"[a-z0-9]{1,10}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
AMI = re.compile(r"ami-[0-9a-f]{8,17}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Kong 2.7 (typedefs.path) rejects empty segments: "//" would pass here and fail at deploy.
URL_PATH = re.compile(r"(?!.*//)/[A-Za-z0-9._~/-]*")
HEADER = re.compile(r"[A-Za-z0-9-]+")
PG_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
SSH_PORT = 22
# The admin API is full control of the gateway: wider than this, only private ranges are accepted.
WIDEST_ADMIN_PREFIX = 16
PRIVATE_RANGES = [ipaddress.IPv4Network(range_) for range_ in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
# Sprint2's newest commit where migrate, both populate scripts and /despachos/reporte/ work (README:
# "Which commit of Sprint2"); a commit, not a branch, so an upstream push never breaks a working setup.
SPRINT2_WORKING_COMMIT = "b0abfcb9949fc9fd2eb30d50c22d591d4177dfa0"


# --- value checks: each returns an error text ("expected ...") or None -------------------------


def _string(pattern: re.Pattern | None = None, hint: str = "") -> Callable[[Any], str | None]:
    def check(value):
        if not isinstance(value, str) or not value:
            return "expected a non-empty string"
        if pattern and not pattern.fullmatch(value):
            return f"expected {hint}, got {value!r}"
        # A NUL, newline or escape sequence ends up in a file, a command line or a terminal.
        if any(unicodedata.category(character) == "Cc" for character in value):
            return f"expected no control characters, got {value!r}"
        return None

    return check


def _optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    return lambda value: None if value is None else check(value)


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected a whole number from {low} to {high}, got {value!r}"
        if not low <= value <= high:
            return f"expected a whole number from {low} to {high}, got {value}"
        return None

    return check


def _cidr(value):
    if not isinstance(value, str):
        return f"expected an IPv4 CIDR such as 203.0.113.7/32, got {value!r}"
    try:
        ipaddress.IPv4Network(value)
    except ValueError:
        return f"expected an IPv4 CIDR such as 203.0.113.7/32 (host bits zero), got {value!r}"
    return None


def _is_private(network: ipaddress.IPv4Network) -> bool:
    return any(network.subnet_of(range_) for range_ in PRIVATE_RANGES)


def _admin_cidr(value):
    problem = _cidr(value)
    if problem:
        return problem
    network = ipaddress.IPv4Network(value)
    if network.prefixlen < WIDEST_ADMIN_PREFIX and not _is_private(network):
        return (f"{value} would open Kong's admin API (full control of the gateway) to "
                f"{network.num_addresses} addresses; give your own address (x.x.x.x/32) or a range no wider "
                f"than /{WIDEST_ADMIN_PREFIX}, or leave it unset and use the SSH tunnel")
    return None


def _local_subnet(value):
    problem = _cidr(value)
    if problem or ipaddress.IPv4Network(value).prefixlen != 24:
        return problem or f"expected a /24 such as 10.77.0.0/24, got {value}"
    # Public, loopback or link-local addresses on a bridge would capture someone else's traffic.
    if not _is_private(ipaddress.IPv4Network(value)):
        return (f"expected a private range (inside {', '.join(map(str, PRIVATE_RANGES[:-1]))} or "
                f"{PRIVATE_RANGES[-1]}), got {value}")
    return None


def _kong_port(value):
    if value == SSH_PORT:
        return f"{value} is SSH's port on the Kong host: choose another (1024-65535)"
    problem = _integer(1024, 65535)(value)
    # Kong listens on the host's network as the image's unprivileged user: no port below 1024.
    return f"{problem} (Kong runs unprivileged on the Kong host's network)" if problem else None


def _choice(*allowed: str) -> Callable[[Any], str | None]:
    def check(value):
        if value not in allowed:
            return f"expected one of {', '.join(allowed)}, got {value!r}"
        return None

    return check


def _list_of(item: Callable[[Any], str | None], unique: bool = True) -> Callable[[Any], str | None]:
    def check(value):
        if not isinstance(value, list) or not value:
            return "expected a non-empty list"
        for index, element in enumerate(value):
            problem = item(element)
            if problem:
                return f"item {index + 1}: {problem}"
        if unique:
            seen = set()
            for element in value:
                if element in seen:
                    return f"expected no duplicates, {element!r} appears twice"
                seen.add(element)
        return None

    return check


def _status(value):
    return _integer(100, 599)(value)


def _boolean(value):
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


# Django management commands that ask on a terminal unless told not to: a deploy has no terminal,
# so without --noinput they would die (EOFError) or, worse, wait.
_ASKING = ("makemigrations", "migrate", "collectstatic", "flush", "createsuperuser")


def _command(value):
    problem = _string()(value)
    if problem:
        return problem
    try:
        words = shlex.split(value)
    except ValueError as error:
        return f"expected a shell command, got {value!r} ({error})"
    if "manage.py" in words:
        asking = [word for word in words if word in _ASKING]
        if asking and not {"--noinput", "--no-input"} & set(words):
            return f"{value!r} would wait for answers on a terminal the deploy does not have: add --noinput"
    return None


def _python_script(value):
    """A populate command runs inside the deploy's database transaction, in the same Python."""
    problem = _command(value)
    if problem:
        return problem
    words = shlex.split(value)
    if len(words) < 2 or words[0] not in ("python", "python3") or words[1].startswith("-"):
        return (f"expected 'python SCRIPT [ARGUMENTS]' (run once, inside one database transaction with its "
                f"marker), got {value!r}")
    return None


# --- the schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    default: Any
    check: Callable[[Any], str | None]
    doc: str


SCHEMA: dict[str, Any] = {
    "project_prefix": Field("des", _string(NAME, "lower-case letters, digits and '-', starting with a letter, at most 20 characters"),
                            "Prefix of every host and resource name: <prefix>-db, <prefix>-backend-a, <prefix>-kong."),
    "region": Field("us-east-1", _string(REGION, "an AWS region such as us-east-1"),
                    "AWS region (Learner Lab allows us-east-1 and us-west-2)."),
    "instance_type": Field("t2.nano", _string(INSTANCE_TYPE, "an EC2 instance type such as t2.nano"),
                           "EC2 type of the database and backend hosts."),
    "kong_instance_type": Field("t2.small", _string(INSTANCE_TYPE, "an EC2 instance type such as t2.small"),
                                "EC2 type of the Kong host (Kong needs about 1 GB of memory)."),
    "ami_id": Field(None, _optional(_string(AMI, "an AMI id such as ami-0123456789abcdef0")),
                    "AMI for every host; unset = newest Canonical Ubuntu 24.04 amd64 image."),
    "key_name": Field(None, _optional(_string()),
                      "Existing EC2 key pair (Learner Lab: vockey); unset = a project key generated locally."),
    "ssh_key_path": Field(None, _optional(_string()),
                          "Private key for key_name (e.g. ~/.ssh/labsuser.pem); unused with a generated key."),
    "ssh_user": Field("ubuntu", _string(NAME, "a user name"),
                      "SSH user on the AWS hosts (Ubuntu images: ubuntu)."),
    "admin_cidr": Field(None, _optional(_cidr),
                        "Who may SSH to the hosts (your IP/32); unset = anywhere, with a warning."),
    "kong_admin_cidr": Field(None, _optional(_admin_cidr),
                             "Who may reach Kong's admin API on 8001; unset = nobody (SSH tunnel only)."),
    "manager_email": Field(None, _optional(_string(EMAIL, "an e-mail address")),
                           "Address subscribed to status-check alarms (SNS); unset = no alerts."),
    "backends": Field(["a", "b"], _list_of(_string(BACKEND_KEY, "1-10 lower-case letters or digits")),
                      "Backend keys: one host <prefix>-backend-<key> each."),
    "local_subnet": Field("10.77.0.0/24", _local_subnet,
                          "--provider local: the /24 of the local hosts' bridge (the host takes .1)."),
    "app_repo": Field("https://github.com/mr-torres-d-ojedas/Sprint2.git", _string(),
                      "Git URL of the Django application."),
    "app_ref": Field(SPRINT2_WORKING_COMMIT, _string(),
                     "Branch, tag or commit of app_repo to deploy (default: Sprint2's newest commit that works)."),
    "app_port": Field(8080, _integer(1024, 65535), "Port gunicorn listens on, on each backend."),
    "app_setup_commands": Field(
        ["python manage.py makemigrations --noinput", "python manage.py migrate --noinput"],
        _list_of(_command, unique=False),
        "Run on one backend at every deploy that changes the code (in the checkout, with the venv)."),
    "app_populate_commands": Field(
        ["python populate.py", "python populateDespachos.py"], _list_of(_python_script),
        "Each run at most once in the life of the database, inside one transaction with its marker."),
    "allow_destructive_migrations": Field(False, _boolean,
                                          "Apply new migrations that drop a field or a model (their data is lost)."),
    "releases_keep": Field(3, _integer(2, 50), "Releases kept on each backend (the live one and those to roll back to)."),
    "switch_batch_size": Field(1, _integer(1, 100),
                               "Backends switched to a new release at a time, each batch after the last answers healthy."),
    "db_name": Field("dispatch_db", _string(PG_NAME, "a PostgreSQL name"),
                     "Application database."),
    "db_user": Field("dispatch_user", _string(PG_NAME, "a PostgreSQL name"),
                     "Application database role."),
    "max_connections": Field(2000, _integer(10, 10000), "PostgreSQL max_connections."),
    "backup_keep": Field(7, _integer(1, 365), "Daily pg_dump files kept on the database host."),
    "backup_bucket": Field(None, _optional(_string(re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
                                                   "an S3 bucket name")),
                           "AWS: S3 bucket the daily backup also uploads each dump to (the database host "
                           "needs an instance profile allowed to write it); unset = no off-host copy."),
    "gateway": {
        "image": Field("kong:2.7.2-alpine", _string(), "Kong Docker image (open-source tags: kong:2.7.2-alpine)."),
        "proxy_port": Field(8000, _kong_port, "Kong proxy port (1024-65535), open to everyone."),
        "admin_port": Field(8001, _kong_port, "Kong admin API port, on the Kong host's 127.0.0.1 only."),
        "health_path": Field("/despachos/reporte/", _string(URL_PATH, "a path starting with /"),
                             "Path probed on each backend by Kong and by the deploy (200 or 302 = healthy)."),
        "algorithm": Field("round-robin", _choice("round-robin", "least-connections", "consistent-hashing"),
                           "Kong load-balancing algorithm."),
        "target_weight": Field(100, _integer(0, 65535), "Weight of every backend target."),
        "retries": Field(5, _integer(0, 32767), "Retries of a failed request on another backend."),
        "connect_timeout_ms": Field(60000, _integer(1, 2147483646), "Kong connect timeout to a backend."),
        "read_timeout_ms": Field(60000, _integer(1, 2147483646), "Kong read timeout from a backend."),
        "write_timeout_ms": Field(60000, _integer(1, 2147483646), "Kong write timeout to a backend."),
        "route_paths": Field(["/"], _list_of(_string(URL_PATH, "a path starting with /")),
                             "Paths routed to the backends (not stripped)."),
        "rate_limit_per_minute": Field(100, _integer(1, 1000000), "Requests per minute per client IP."),
        "request_id_header": Field("X-Kong-Request-ID", _string(HEADER, "an HTTP header name"),
                                   "Correlation id header added to every request and response."),
        "active": {
            "interval": Field(10, _integer(1, 65535), "Seconds between probes of a healthy backend."),
            "timeout": Field(5, _integer(1, 65535), "Seconds before a probe times out."),
            "concurrency": Field(10, _integer(1, 2147483648), "Probes run at once."),
            "healthy_successes": Field(2, _integer(1, 255), "Successful probes that mark a backend healthy."),
            "healthy_statuses": Field([200, 302], _list_of(_status), "Statuses that count as success."),
            "unhealthy_interval": Field(10, _integer(1, 65535),
                                        "Seconds between probes of an unhealthy backend (to bring it back)."),
            "unhealthy_http_failures": Field(3, _integer(1, 255), "Failed probes that eject a backend."),
            "unhealthy_timeouts": Field(3, _integer(1, 255), "Timed-out probes that eject a backend."),
            "unhealthy_tcp_failures": Field(3, _integer(1, 255), "Refused connections that eject a backend."),
        },
        "passive": {
            "healthy_successes": Field(5, _integer(1, 255), "Successful proxied responses that mark a backend healthy."),
            "unhealthy_http_failures": Field(5, _integer(1, 255), "Failed proxied responses that eject a backend."),
            "unhealthy_timeouts": Field(2, _integer(1, 255), "Timed-out proxied requests that eject a backend."),
            "unhealthy_tcp_failures": Field(2, _integer(1, 255), "Refused proxied connections that eject a backend."),
        },
    },
}


class Settings:
    """Read-only settings; nested sections are Settings too (`settings.gateway.active.interval`)."""

    def __init__(self, values: dict[str, Any]):
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._values[name]
        except KeyError:
            raise AttributeError(name) from None
        return Settings(value) if isinstance(value, dict) else value

    def __setattr__(self, name, value):
        raise AttributeError("settings are read-only")

    def as_dict(self) -> dict[str, Any]:
        """A deep copy, for templates and for writing into the state file."""
        return _copy(self._values)

    def __eq__(self, other):
        return isinstance(other, Settings) and self._values == other._values

    def __repr__(self):
        return f"Settings({self._values!r})"


def _copy(value):
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _merge(schema: dict, given: Any, path: str) -> dict:
    """Defaults of `schema` overlaid with `given`, validated; raises SettingsError naming the path."""
    where = path.rstrip("/") or "the top level"
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise SettingsError(f"{where}: expected a mapping of settings, got {type(given).__name__}")
    for key in given:
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise SettingsError(f"{path}{key}: unknown setting (known here: {known})")
    merged = {}
    for key, spec in schema.items():
        if isinstance(spec, dict):
            merged[key] = _merge(spec, given.get(key), f"{path}{key}/")
            continue
        value = given[key] if key in given else _copy(spec.default)
        problem = spec.check(value)
        if problem:
            raise SettingsError(f"{path}{key}: {problem}")
        merged[key] = value
    return merged


def config_path() -> Path:
    """DEPLOY_CONFIG if set (it must exist), else config.yml at the project root (optional)."""
    named = os.environ.get("DEPLOY_CONFIG")
    return Path(named).expanduser() if named else DEFAULT_CONFIG


def load_settings(path: Path | None = None) -> Settings:
    """Read, validate and return the settings. Raises SettingsError (exit status 2) on bad input."""
    explicit = path is not None or bool(os.environ.get("DEPLOY_CONFIG"))
    path = path or config_path()
    if not path.exists():
        if explicit:
            raise SettingsError(f"{path}: settings file not found (check DEPLOY_CONFIG)")
        return defaults()
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as problem:
        raise SettingsError(f"{path}: cannot read it ({problem.strerror})") from None
    except UnicodeDecodeError as problem:
        raise SettingsError(f"{path}: not UTF-8 text (byte 0x{problem.object[problem.start]:02x} at offset "
                            f"{problem.start}): save it as UTF-8") from None
    given = _parse_yaml(path, text)
    try:
        return settings_from(given)
    except SettingsError as problem:
        raise SettingsError(f"{path.name}: {problem}") from None


def _parse_yaml(path: Path, text: str) -> Any:
    """The file's data; a YAML error or a key given twice (PyYAML keeps the last) is one line."""
    try:
        _refuse_duplicate_keys(path, yaml.compose(text, Loader=yaml.SafeLoader), "")
        return yaml.safe_load(text)
    except yaml.reader.ReaderError as problem:
        # Raised for raw control characters (a NUL byte...); its own text spans two lines.
        raise SettingsError(f"{path}: control character 0x{problem.character:02x} at character "
                            f"{problem.position}: remove it") from None
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise SettingsError(f"{path}{line}: not valid YAML ({getattr(problem, 'problem', problem)})") from None


def _refuse_duplicate_keys(path: Path, node: Any, where: str) -> None:
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(path, item, where)
    if not isinstance(node, yaml.MappingNode):
        return
    seen = set()
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name is not None and name in seen:
            raise SettingsError(f"{path} line {key.start_mark.line + 1}: {where}{name} is given twice "
                                "(the last would win silently): keep one")
        seen.add(name)
        _refuse_duplicate_keys(path, value, f"{where}{name}/")


def settings_from(values: dict[str, Any]) -> Settings:
    """Settings from a mapping, as if read from a file (tests build them inline this way)."""
    merged = _merge(SCHEMA, values, "")
    gateway = merged["gateway"]
    # Both are published on the Kong host: the same port fails `docker run` after the old
    # container was removed, taking the gateway down.
    if gateway["admin_port"] == gateway["proxy_port"]:
        raise SettingsError(f"gateway/admin_port: expected a port other than gateway/proxy_port "
                            f"({gateway['proxy_port']})")
    return Settings(merged)


def defaults() -> Settings:
    return settings_from({})


def host_names(settings: Settings) -> dict[str, tuple[str, str | None]]:
    """Every host of the design, name -> (role, backend key): db first, then backends, then kong."""
    prefix = settings.project_prefix
    names = {f"{prefix}-db": ("db", None)}
    for key in settings.backends:
        names[f"{prefix}-backend-{key}"] = ("backend", key)
    names[f"{prefix}-kong"] = ("kong", None)
    return names
