"""Files the deploy manages, checked with one command when they are already right.

pyinfra's `files.put` asks two commands of a file that exists (its owner and mode, then its sum),
and a deploy that changes nothing asks them for every managed file of every host (8 files per
backend; issue 12). `put` reads the owner, the mode and the SHA-256 of the file at once and stops
there when all match; otherwise it is `files.put` itself, with its --diff output and its upload.
"""

import hashlib
import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.operations import files


class FileSummary(FactBase):
    """{"user", "group", "mode" (e.g. 644), "sha256"} of the file at `path`, or None when there
    is no such file."""

    def command(self, path):
        quoted = shlex.quote(path)
        return f"if [ -f {quoted} ]; then stat -c '%U %G %a' {quoted} && sha256sum {quoted}; fi"

    def process(self, output):
        lines = [line.split() for line in output if line.strip()]
        if len(lines) < 2 or len(lines[0]) != 3 or not lines[1]:
            return None
        user, group, mode = lines[0]
        return {"user": user, "group": group, "mode": int(mode), "sha256": lines[1][0]}


def sha256_of(src: str | Path | StringIO) -> str:
    if isinstance(src, StringIO):
        return hashlib.sha256(src.getvalue().encode()).hexdigest()
    return hashlib.sha256(Path(src).read_bytes()).hexdigest()


def is_in_place(current: dict | None, sha256: str, user: str | None, group: str | None, mode: str | None) -> bool:
    """Whether the file `current` (a FileSummary) already has this content, owner and mode."""
    return bool(
        current
        and current["sha256"] == sha256
        and user in (None, current["user"])
        and group in (None, current["group"])
        and (mode is None or int(mode) == current["mode"])
    )


@operation()
def put(
    src: str | Path | StringIO,
    dest: str,
    user: str | None = None,
    group: str | None = None,
    mode: str | None = None,
    create_remote_dir: bool = True,
):
    """`files.put` (same arguments), checked with one command when the file is already right."""
    if is_in_place(host.get_fact(FileSummary, path=dest), sha256_of(src), user, group, mode):
        host.noop(f"file {dest} is already uploaded")
        return
    yield from files.put._inner(
        src=src if isinstance(src, StringIO) else str(src),
        dest=dest,
        user=user,
        group=group,
        mode=mode,
        create_remote_dir=create_remote_dir,
    )
