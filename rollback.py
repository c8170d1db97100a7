"""Move every backend back to an earlier release: pyinfra inventory.py rollback.py [--data release=COMMIT].

Without a release named, each backend goes back to the release it served before its current one
(its history: /srv/sprint2/releases/.history). The backends switch in batches, each waiting for
the health path, as a deploy does. A rollback never reverses migrations: the database stays as
the newest release left it, so the older code must work with it (add, don't drop, in one release).
"""

from pyinfra import host, state

from stack.deploy_lock import take
from tasks.backend.deploy import rollback_backend

take("a rollback", state)

# The Kong nodes too: each drains the backends of a batch before their switch (tasks/kong/drain.py).
if "backends" in host.groups or "kong" in host.groups:
    rollback_backend(release=host.data.get("release"))
