"""A deletion AWS refuses for a moment (a group an ENI still holds, a target group a load
balancer is letting go of, an RDS instance still backing up): the call retried while AWS answers
one of the `busy` codes, for `patience` seconds, with a progress line each time."""

import time
from collections.abc import Callable

from botocore.exceptions import ClientError


def retry_while_busy(
    call: Callable[[], object],
    *,
    busy: tuple[str, ...],
    patience: float,
    pause: float,
    waiting: Callable[[str], str],
    progress: Callable[[str], None],
    gone: tuple[str, ...] = (),
    clock=time,
) -> None:
    """`gone` codes mean there is nothing left to delete; `waiting(code)` is the progress line;
    `clock` (time.monotonic and time.sleep) is the caller's, so a test's clock reaches here too."""
    deadline = clock.monotonic() + patience
    while True:
        try:
            call()
            return
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in gone:
                return
            if code not in busy or clock.monotonic() > deadline:
                raise
            progress(waiting(code))
            clock.sleep(pause)
