"""Kong, as pure data: the declarative kong.yml and the `kong` container's spec and commands.

Nothing here touches a host; tasks/kong/deploy.py ships the results. The names below are the contract
between the config, the container and `provision.py status`.
"""

import hashlib
import json
import shlex

from tasks.shared import UPSTREAM
from tasks.templating import render_template

SERVICE = "backend-service"
ROUTE = "backend-route"

CONTAINER = "kong"
# The container's label holding the hash of its spec: pyinfra's docker.container cannot tell
# that a container's image, ports or env changed (pyinfra issue #1561), this label can.
SPEC_LABEL = "stack.kong.spec"

HOST_DIR = "/opt/kong/declarative"
CONTAINER_DIR = "/kong/declarative"
CONFIG_NAME = "kong.yml"
# A new config waits here until Kong has parsed it, so a bad one never replaces the serving one.
CANDIDATE_NAME = "kong.next.yml"
CONFIG = f"{HOST_DIR}/{CONFIG_NAME}"
CANDIDATE = f"{HOST_DIR}/{CANDIDATE_NAME}"

PULL_TIMEOUT_S = 300
# The settings each listening port comes from, named in the error when the port is taken.
LISTEN_SETTINGS = {"KONG_PROXY_LISTEN": "gateway.proxy_port", "KONG_ADMIN_LISTEN": "gateway.admin_port"}


def targets(private_ips: list[str], app_port: int) -> list[str]:
    return [f"{ip}:{app_port}" for ip in private_ips]


def render_kong_yml(settings, private_ips: list[str]) -> str:
    """The declarative config for the given backends' private addresses, in the order given."""
    gateway = settings.gateway
    return render_template(
        "kong/kong.yml.j2",
        gateway=gateway,
        active=gateway.active,
        passive=gateway.passive,
        upstream=UPSTREAM,
        service=SERVICE,
        route=ROUTE,
        targets=targets(private_ips, settings.app_port),
    )


def container_spec(settings) -> dict:
    """Everything `docker run` is told, as plain data: a change here means a new container."""
    gateway = settings.gateway
    # The admin API is full control over Kong (POST /config replaces everything): loopback only,
    # unless the operator named who may reach it (then the security group is the gate).
    admin_address = "0.0.0.0" if settings.kong_admin_cidr else "127.0.0.1"
    return {
        "name": CONTAINER,
        "image": gateway.image,
        "restart": "unless-stopped",
        # The host's network, no published ports: Docker publishes a port on 127.0.0.1 with a DNAT
        # rule that also takes packets a neighbour addresses to 127.0.0.1 (moby issue 45610). Kong
        # then listens on the host's own loopback, which the kernel keeps to the host (packets to
        # 127.0.0.0/8 arriving on a network interface are dropped as martians).
        "network": "host",
        "env": {
            "KONG_DATABASE": "off",
            "KONG_DECLARATIVE_CONFIG": f"{CONTAINER_DIR}/{CONFIG_NAME}",
            "KONG_PROXY_LISTEN": f"0.0.0.0:{gateway.proxy_port}",
            "KONG_ADMIN_LISTEN": f"{admin_address}:{gateway.admin_port}",
            "KONG_PROXY_ACCESS_LOG": "/dev/stdout",
            "KONG_ADMIN_ACCESS_LOG": "/dev/stdout",
            "KONG_PROXY_ERROR_LOG": "/dev/stderr",
            "KONG_ADMIN_ERROR_LOG": "/dev/stderr",
        },
        # The folder, not the file: a file bind-mount would keep pointing at the replaced inode.
        "mounts": [f"{HOST_DIR}:{CONTAINER_DIR}:ro"],
        # Kong logs every request to stdout, kept by Docker in a json-file without any limit:
        # at most 5 files of 10 MB (`docker logs kong` reads them). Part of the spec: adding the
        # limits recreated an existing container once.
        "log_driver": "json-file",
        "log_options": {"max-size": "10m", "max-file": "5"},
    }


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def docker_run_argv(spec: dict) -> list[str]:
    argv = ["docker", "run", "--detach", "--name", spec["name"], "--restart", spec["restart"],
            "--network", spec["network"], "--label", f"{SPEC_LABEL}={spec_hash(spec)}"]
    for name, value in sorted(spec["env"].items()):
        argv += ["--env", f"{name}={value}"]
    for mount in spec["mounts"]:
        argv += ["--volume", mount]
    argv += ["--log-driver", spec["log_driver"]]
    for name, value in sorted(spec["log_options"].items()):
        argv += ["--log-opt", f"{name}={value}"]
    return argv + [spec["image"]]


def listen_ports(spec: dict) -> dict[int, str]:
    """port -> the setting it comes from, for each address Kong is told to listen on."""
    return {int(spec["env"][variable].rsplit(":", 1)[1]): setting
            for variable, setting in LISTEN_SETTINGS.items() if variable in spec["env"]}


def ports_free_command(ports: dict[int, str]) -> str:
    """Fail with one line naming the holder when a port Kong is to listen on is held by anything but
    the serving container (its own processes, or Docker's proxy for a port it publishes). Run before
    that container is removed: a taken port must not leave the host without a gateway."""
    checks = " ".join(f"{port}:{setting}" for port, setting in ports.items())
    return (
        f"pid=$(docker inspect --format '{{{{.State.Pid}}}}' {CONTAINER} 2>/dev/null); "
        r'ours=$(readlink "/proc/${pid:-0}/ns/pid" 2>/dev/null); '
        f"published=$(docker port {CONTAINER} 2>/dev/null); "
        f"for check in {checks}; do port=${{check%%:*}}; setting=${{check#*:}}; "
        r'listeners=$(ss -Hltnp "sport = :$port"); [ -n "$listeners" ] || continue; '
        r'printf "%s\n" "$published" | grep -q ":$port\$" && continue; '
        r'holders=$(printf "%s\n" "$listeners" | grep -o "pid=[0-9]*" | cut -d= -f2 | sort -u); '
        r"for holder in ${holders:-unknown}; do "
        r'[ -n "$ours" ] && [ "$(readlink "/proc/$holder/ns/pid" 2>/dev/null)" = "$ours" ] && continue; '
        r'name=$(cat "/proc/$holder/comm" 2>/dev/null || echo "a process"); '
        r"printf 'port %s is taken on the Kong host by %s (pid %s): choose another %s; the running Kong "
        r"""container was left as it is\n' "$port" "$name" "$holder" "$setting" >&2; exit 1; done; done"""
    )


def parse_in_new_container_argv(spec: dict) -> list[str]:
    """Validate the candidate with the spec's image before any container runs it."""
    argv = ["docker", "run", "--rm", "--env", "KONG_DATABASE=off"]
    for mount in spec["mounts"]:
        argv += ["--volume", mount]
    return argv + [spec["image"], "kong", "config", "parse", f"{CONTAINER_DIR}/{CANDIDATE_NAME}"]


def parse_in_running_container_argv() -> list[str]:
    return ["docker", "exec", CONTAINER, "kong", "config", "parse", f"{CONTAINER_DIR}/{CANDIDATE_NAME}"]


def reload_argv() -> list[str]:
    return ["docker", "exec", CONTAINER, "kong", "reload"]


def install_candidate_command() -> str:
    """Make the parsed candidate the serving file (world-readable: the image's kong user is not root)."""
    return shlex.join(["install", "-m", "0644", f"{HOST_DIR}/{CANDIDATE_NAME}", f"{HOST_DIR}/{CONFIG_NAME}"])


def checked(argv: list[str], what: str) -> str:
    """Run argv; on failure print `what` and the tool's own message, and fail."""
    return (
        f"out=$({shlex.join(argv)} 2>&1) || "
        f"{{ printf '%s\\n' {shlex.quote(what)} \"$out\" >&2; exit 1; }}"
    )


def pull_command(image: str) -> str:
    """`docker pull` whose failure is one line: Docker's last words plus what to do about it."""
    quoted = shlex.quote(image)
    advice = "; check the host's internet access or set gateway.image"
    return (
        f"out=$(timeout {PULL_TIMEOUT_S} docker pull --quiet {quoted} 2>&1) || {{ "
        f"reason=$(printf '%s\\n' \"$out\" | grep -v '^[[:space:]]*$' | tail -n 1); "
        f"printf 'cannot pull %s: %s%s\\n' {quoted} \"${{reason:-no answer within {PULL_TIMEOUT_S} s}}\" "
        f"{shlex.quote(advice)} >&2; exit 1; }}"
    )
