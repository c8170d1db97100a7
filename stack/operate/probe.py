"""What `status` runs on each host (one SSH connection per host) and how its answer is read.

The probe prints `key=value` lines and only reads: uptime, disk and memory everywhere; on a
backend the service state, the checked-out commit and the health path as Kong's probes ask it;
on the db host PostgreSQL's connections and the newest backup; on the Kong host the container's
state and the admin API (127.0.0.1 only, read from the host itself: nothing is exposed).
"""

import json
import shlex

from stack.operate.commands import as_root
from stack.operate.hosts import Target
from stack.settings import Settings
from tasks.backend.layout import LAYOUT
from tasks.db.backup_render import BACKUP_DIRECTORY
from tasks.kong.render import CONFIG as KONG_CONFIG
from tasks.kong.render import CONTAINER as KONG_CONTAINER
from tasks.kong.status import PATHS

COMMON = (
    "cd /\n"
    "echo now=$(date +%s)\n"
    "echo uptime_s=$(cut -d. -f1 /proc/uptime)\n"
    'df -Pk / | awk \'NR == 2 {print "disk_used_kb=" $3; print "disk_size_kb=" $2}\'\n'
    'awk \'/^MemTotal:/ {print "mem_total_kb=" $2} /^MemAvailable:/ {print "mem_available_kb=" $2}\' /proc/meminfo\n'
)

# GET path with Host: address, as Kong's active probes send it; no redirect followed, no retry.
HTTP_PROBE = (
    "import http.client, sys\n"
    "address, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
    "try:\n"
    "    connection = http.client.HTTPConnection(address, port, timeout=5)\n"
    "    connection.request('GET', path, headers={'Host': address})\n"
    "    print(connection.getresponse().status)\n"
    "except OSError as error:\n"
    "    print('no answer: %s' % error)\n"
)

ADMIN_PROBE = (
    "import json, sys, urllib.request\n"
    "port = int(sys.argv[1])\n"
    "for key, path in json.loads(sys.argv[2]).items():\n"
    "    try:\n"
    "        with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=5) as answer:\n"
    "            print('kong_%s=%s' % (key, json.dumps(json.load(answer))))\n"
    "    except (OSError, ValueError) as error:\n"
    "        print('kong_%s_error=%s' % (key, str(error).replace(chr(10), ' ')))\n"
)
BACKUP_LATEST = (
    "latest=$(ls -1t {pattern} 2>/dev/null | head -n 1); "
    'if [ -n "$latest" ]; then echo "backup=$latest"; echo backup_time=$(stat -c %Y "$latest"); fi'
)

ADMIN_PATHS = {**PATHS, "status": "/status"}
ADMIN_PATHS_JSON = json.dumps(ADMIN_PATHS, separators=(",", ":"))


def _python(program: str, *args: str) -> str:
    return " ".join(["python3", "-c", shlex.quote(program), *map(shlex.quote, args)])


def probe_script(host: Target, settings: Settings) -> str:
    script = COMMON
    if host.role == "backend":
        health = _python(HTTP_PROBE, host.private_ip, str(settings.app_port), settings.gateway.health_path)
        # The release gunicorn runs (its working directory), which is what serves, whatever
        # `current` says meanwhile.
        script += (
            f"echo service=$(systemctl is-active {LAYOUT.service}.service)\n"
            f"pid=$(systemctl show -p MainPID --value {LAYOUT.service}.service)\n"
            f'echo commit=$(basename "$(readlink /proc/${{pid:-0}}/cwd 2>/dev/null)" 2>/dev/null)\n'
            # Its virtualenv, named by the lock it was built from (/etc/sprint2/locks/<lock>.txt).
            f'echo lock=$(basename "$(readlink -f /proc/${{pid:-0}}/cwd/.venv 2>/dev/null)" 2>/dev/null)\n'
            f"echo health=$({health} 2>&1 | tail -n 1)\n"
        )
    elif host.role == "db":
        query = ("select count(*) from pg_stat_activity where backend_type = 'client backend'", "show max_connections")
        backups = f"{BACKUP_DIRECTORY}/{settings.db_name}-*.sql.gz"
        # In the `postgres` database, where the app role owns nothing (tasks/db/commands.py's psql).
        psql = "runuser -u postgres -- psql -XAtq -d postgres " + " ".join(f"-c {shlex.quote(q)}" for q in query)
        script += (
            f"if out=$({psql} 2>&1); then echo connections=$(echo $out | tr ' ' /); "
            'else echo "db_error=$(echo "$out" | tail -n 1)"; fi\n'
            # The backup folder is postgres's: listed as postgres, never by root.
            f"runuser -u postgres -- sh -c {shlex.quote(BACKUP_LATEST.format(pattern=backups))}\n"
        )
    elif host.role == "kong":
        script += (
            "if command -v docker >/dev/null; then echo container=$(docker inspect --format "
            f"'{{{{.State.Status}}}}' {KONG_CONTAINER} 2>/dev/null || echo absent); "
            "else echo container=no-docker; fi\n"
            f"echo config_sha256=$(sha256sum {KONG_CONFIG} 2>/dev/null | cut -d' ' -f1)\n"
            f"{_python(ADMIN_PROBE, str(settings.gateway.admin_port), ADMIN_PATHS_JSON)}\n"
        )
    return as_root(host, f"sh -c {shlex.quote(script)}")


def parse(output: str) -> dict[str, str]:
    """`key=value` lines as a dict (the first `=` splits; other lines are ignored)."""
    facts = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.replace("_", "").isalnum():
            facts[key] = value.strip()
    return facts
