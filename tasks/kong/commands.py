"""Kong's command lines, as pure text: docker run/exec/pull, the port check, the config's parse and install.

Nothing here reads a host; tasks/kong/operations.py yields these. Each failure is one line
(the tool's own last words and what to do), never a traceback.
"""

import shlex

from tasks.kong.render import (
    CANDIDATE_NAME,
    CONFIG_NAME,
    CONTAINER,
    CONTAINER_DIR,
    HOST_DIR,
    SPEC_LABEL,
    spec_hash,
)

PULL_TIMEOUT_S = 300
# The settings each listening port comes from, named in the error when the port is taken.
LISTEN_SETTINGS = {"KONG_PROXY_LISTEN": "gateway.proxy_port", "KONG_ADMIN_LISTEN": "gateway.admin_port"}


def docker_run_argv(spec: dict) -> list[str]:
    argv = [
        "docker",
        "run",
        "--detach",
        "--name",
        spec["name"],
        "--restart",
        spec["restart"],
        "--network",
        spec["network"],
        "--label",
        f"{SPEC_LABEL}={spec_hash(spec)}",
    ]
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
    return {
        int(spec["env"][variable].rsplit(":", 1)[1]): setting
        for variable, setting in LISTEN_SETTINGS.items()
        if variable in spec["env"]
    }


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


def fail(message: str) -> str:
    """A command that fails the operation with one line (raising would print a traceback)."""
    return f"echo {shlex.quote(message)} >&2; exit 1"


def checked(argv: list[str], what: str) -> str:
    """Run argv; on failure print `what` and the tool's own message, and fail."""
    return f"out=$({shlex.join(argv)} 2>&1) || {{ printf '%s\\n' {shlex.quote(what)} \"$out\" >&2; exit 1; }}"


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
