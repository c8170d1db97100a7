"""The `kong` group: Docker from the distribution, a DB-less Kong container, its declarative config.

Settings: `gateway:` and `kong_admin_cidr` in tasks/kong/settings.py (documented in config.example.yml).
Files and names: tasks/kong/render.py.

Steps, each reporting "no change" when the host already matches:
1. docker.io installed, the docker service running and enabled.
2. The rendered config uploaded as a candidate (kong.next.yml); on a host with no config yet it
   also becomes kong.yml at once (nothing is serving, so nothing needs protecting).
3. The image pulled when missing (a failure is one line: Docker's reason and what to do).
4. The container (re)created when its spec label differs from the wanted spec or it is not
   running, after checking that its ports are free (or held by the container it replaces) and
   `kong config parse` of the candidate in a throw-away container.
5. Otherwise, when the candidate differs from kong.yml: parse it inside the running container,
   install it, `kong reload`. A parse failure stops the deploy and leaves kong.yml serving.
Steps 4 and 5 go one node at a time (one operation per node, by name), each node answering on its
admin API before the next; a recreate first takes the node out of the load balancer and puts it
back once it answers (tasks/kong/balancer.py). Recreating the only node without a load balancer
is an outage: the deploy asks first (or takes --data gateway_outage=yes).
"""

import hashlib
from io import StringIO

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.operations import files

from stack.settings import load_settings
from tasks import uploads
from tasks.kong.balancer import OUTAGE_FLAG
from tasks.kong.operations import (
    config_applied,
    container_runs,
    first_config,
    image_present,
)
from tasks.kong.render import CANDIDATE, HOST_DIR, container_spec, render_kong_yml
from tasks.packages import packages_installed
from tasks.shared import backend_addresses
from tasks.units import units_running


@deploy("Deploy Kong")
def deploy_kong(settings=None):
    settings = settings or load_settings()
    text = render_kong_yml(settings, backend_addresses())
    spec = container_spec(settings)

    packages_installed(name="Ensure the Docker engine is installed", packages=["docker.io"])
    units_running(name="Ensure Docker runs and starts at boot", units=["docker.service"])
    files.directory(name="Ensure Kong's config folder exists", path=HOST_DIR, mode="755")
    uploads.put(name="Upload the candidate Kong config", src=StringIO(text), dest=CANDIDATE, mode="644")
    first_config(name="Install the first Kong config")
    image_present(name="Ensure the Kong image is present", image=spec["image"])
    roll = sorted(node.name for node in inventory.get_group("kong", default=[host]))
    for number, node in enumerate(roll, start=1):
        container_runs(
            name=f"Ensure the Kong container runs the current spec{_turn(number, roll)}",
            spec=spec,
            node=node,
            roll=roll,
            settings=settings,
            outage_ok=str(host.data.get(OUTAGE_FLAG, "")).lower() == "yes",
        )
    for number, node in enumerate(roll, start=1):
        config_applied(
            name=f"Apply a changed Kong config (parse, then reload){_turn(number, roll)}",
            spec=spec,
            config_sha256=hashlib.sha256(text.encode()).hexdigest(),
            node=node,
            roll=roll,
        )


def _turn(number: int, roll: list[str]) -> str:
    """The operation's name suffix naming whose turn it is (none with one node: the names stay as they were)."""
    return "" if len(roll) == 1 else f", node {number} of {len(roll)} ({roll[number - 1]})"
