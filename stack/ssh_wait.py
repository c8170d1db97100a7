"""Waiting for new hosts to answer SSH, for both providers: each provider says how a host is asked
(an SSH banner on EC2, a real login on a local host) and what to suggest when one never answers."""

import time
from collections.abc import Callable

from stack.errors import UserError


def wait_for_ssh(
    addresses: dict[str, str],
    answers: Callable[[str], bool],
    progress: Callable[[str], None],
    *,
    timeout: float,
    poll: float,
    report_every: float,
    hint: Callable[[list[str]], str],
    alive: Callable[[str], bool] = lambda name: True,
) -> None:
    """Block until answers(name) holds for every host, printing a line as each answers and, while
    any waits, one every `report_every` seconds. `alive(name)` False: its machine is down (the
    provider may have started it again, or raises), so it is not asked this round."""
    started = last_report = time.monotonic()
    pending = dict(addresses)
    while True:
        for name, address in list(pending.items()):
            if alive(name) and answers(name):
                progress(f"  {name} ({address}) answers SSH after {time.monotonic() - started:.0f} s")
                del pending[name]
        if not pending:
            return
        now = time.monotonic()
        if now - started > timeout:
            names = sorted(pending)
            raise UserError(f"{', '.join(names)} did not answer SSH within {timeout:.0f} s: {hint(names)}")
        if now - last_report >= report_every or last_report == started:
            progress(f"  waiting for SSH: {', '.join(pending)} ({now - started:.0f} s)")
            last_report = now
        time.sleep(poll)
