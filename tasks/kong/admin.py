"""Kong's admin API as the deploy uses it, as pure command text run on each Kong node itself.

The admin API listens on the node's 127.0.0.1 (tasks/kong/render.py): these commands reach it
from the node, over the deploy's own SSH, so nothing is exposed. python3 is on every host the
project supports (Ubuntu 24.04, Debian 12 and 13); curl is not on a minimal Debian.

Health marks are node-local in DB-less mode (every node keeps its own health state): the deploy
sends them to every node.
"""

import shlex

from tasks.shared import UPSTREAM

# Seconds a node is given to answer after a reload or a (re)create.
READY_WAIT_S = 60
# After every node marked a target unhealthy: time for each node's workers to see the event and
# stop picking it. Requests already on it are finished by gunicorn's graceful stop (the switch's
# restart waits for its workers), not cut.
DRAIN_WAIT_S = 2

# POST each path; one line naming the node's refusal and exit 1 on the first that fails. A 404 is
# a target this node's kong.yml does not list yet (a new backend): it sends it nothing to drain.
POST_PROGRAM = (
    "import sys, urllib.error, urllib.request\n"
    "port = int(sys.argv[1])\n"
    "for path in sys.argv[2:]:\n"
    "    try:\n"
    "        request = urllib.request.Request('http://127.0.0.1:%d%s' % (port, path), data=b'', method='POST')\n"
    "        urllib.request.urlopen(request, timeout=10).close()\n"
    "    except urllib.error.HTTPError as error:\n"
    "        if error.code != 404:\n"
    "            sys.exit('POST %s on the admin API answered %s' % (path, error))\n"
    "    except (OSError, ValueError) as error:\n"
    "        sys.exit('POST %s on the admin API failed: %s' % (path, error))\n"
)

# GET each path until all answer 2xx, for at most `wait` seconds; then one line and exit 1.
READY_PROGRAM = (
    "import sys, time, urllib.request\n"
    "port, wait = int(sys.argv[1]), float(sys.argv[2])\n"
    "deadline, last = time.monotonic() + wait, 'no answer'\n"
    "while True:\n"
    "    try:\n"
    "        for path in sys.argv[3:]:\n"
    "            urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=5).close()\n"
    "        break\n"
    "    except (OSError, ValueError) as error:\n"
    "        last = str(error)\n"
    "    if time.monotonic() > deadline:\n"
    "        sys.exit('Kong did not answer on its admin API within %d s (%s)' % (wait, last))\n"
    "    time.sleep(0.5)\n"
)

# Kong answers /status once it runs, and the upstream's health once its config is loaded.
READY_PATHS = ("/status", f"/upstreams/{UPSTREAM}/health")


def _python(program: str, *args: str) -> str:
    return shlex.join(["python3", "-c", program, *args])


def target_path(target: str, health: str) -> str:
    """POST here marks `target` ("ip:port") healthy or unhealthy on this node."""
    return f"/upstreams/{UPSTREAM}/targets/{target}/{health}"


def mark_targets_command(admin_port: int, targets: list[str], health: str) -> str:
    return _python(POST_PROGRAM, str(admin_port), *(target_path(target, health) for target in targets))


def ready_command(admin_port: int, wait: int = READY_WAIT_S) -> str:
    """Wait until this node's Kong answers with its config loaded (pyinfra names the node of a failure)."""
    return _python(READY_PROGRAM, str(admin_port), str(wait), *READY_PATHS)


def drain_wait_command(seconds: int = DRAIN_WAIT_S) -> str:
    return f"sleep {seconds}"
