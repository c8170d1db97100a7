"""Files the deploy manages, checked with one command for all of a host's files.

pyinfra's `files.put` asks two commands of a file that exists (its owner and mode, then its sum),
and a deploy that changes nothing asks them for every managed file of every host (8 files per
backend; issue 12), each command costing the host an SSH channel and a shell. Here each managed
file is declared for its host when the deploy is prepared (`managed`); the first check at run time
reads the owner, the mode and the SHA-256 of every declared file of the host at once
(`FileSummaries`), and each operation looks up its own file there. An operation that writes its
file drops that answer (tasks/asked_once.py), so the next one reads the files again. A file not
declared (written by an operation inside another) is read alone (`FileSummary`).
When a file differs, `put` is `files.put` itself, with its --diff output and its upload, except
for the temporary file of a sudo upload (below).

Under sudo, pyinfra uploads to a temporary file (SFTP as the SSH user) and copies it into place as
root. pyinfra names it after the destination (the same name on every run, in world-writable /tmp),
so whoever made that name first (the app user) would get the upload into a file of its own, or
root's `cp` would read what that user put there. Here each upload's temporary file has a random name
and is made new (O_EXCL), private to the SSH user, before the upload writes into it.
"""

import functools
import hashlib
import shlex
from io import StringIO
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.context import ctx_host
from pyinfra.operations import files

from tasks import asked_once
from tasks.paths import stat_command, stat_states

# The files declared for each host, in the order the deploy declared them.
_declared: "WeakKeyDictionary[Any, list[str]]" = WeakKeyDictionary()

_SUMMARY = "stat -c '%U %G %a %F' {path} && sha256sum < {path}"


def _summary(lines: list[str]) -> dict | None:
    """{"user", "group", "mode", "sha256"} from stat's line ('%U %G %a %F') and sha256sum's,
    None if not a regular file (or either line is missing)."""
    if len(lines) != 2:
        return None
    words, digest = lines[0].split(" ", 3), lines[1].split()
    if len(words) != 4 or not words[3].startswith("regular") or not digest:
        return None
    return {"user": words[0], "group": words[1], "mode": int(words[2]), "sha256": digest[0]}


class FileSummary(FactBase):
    """{"user", "group", "mode" (e.g. 644), "sha256"} of the file at `path`, or None when there
    is no such file."""

    def command(self, path):
        quoted = shlex.quote(path)
        return f"if [ -f {quoted} ]; then {_SUMMARY.format(path=quoted)}; fi"

    def process(self, output):
        return _summary([line for line in output if line.strip()])


class FileSummaries(FactBase):
    """{path: what FileSummary says of it} for those of `paths` that are files: one `stat` and one
    `sha256sum` for them all (the paths are the deploy's own: no newline in them)."""

    def command(self, paths):
        names = " ".join(shlex.quote(path) for path in paths)
        return f"{stat_command(paths)}; echo '--'; sha256sum {names} 2>/dev/null; true"

    def process(self, output):
        lines = [line for line in output if line.strip()]
        split = lines.index("--") if "--" in lines else len(lines)
        digests = dict(reversed(line.split(None, 1)) for line in lines[split + 1 :] if len(line.split(None, 1)) == 2)
        return {
            path: {"user": state["user"], "group": state["group"], "mode": state["mode"], "sha256": digests[path]}
            for path, state in stat_states(lines[:split]).items()
            if state["type"].startswith("regular") and path in digests
        }

    @staticmethod
    def default():
        return {}


def managed(write_operation):
    """`write_operation` (a pyinfra operation writing the one file named by its `dest` or `path`
    argument), declaring that file for its host each time the deploy calls it."""

    @functools.wraps(write_operation)
    def declaring(*args, **kwargs):
        _declared.setdefault(ctx_host.get(), []).append(kwargs.get("dest") or kwargs["path"])
        return write_operation(*args, **kwargs)

    return declaring


def summary_of(path: str) -> dict | None:
    """What FileSummary says of `path` on this host: from the read of all declared files when it
    is one of them, else read alone."""
    declared = _declared.get(ctx_host.get(), [])
    if path not in declared:
        return host.get_fact(FileSummary, path=path)
    return asked_once.fact(FileSummaries, paths=list(declared)).get(path)


def written(path: str) -> None:
    """Called by an operation before it writes `path`: the next check reads the files again."""
    asked_once.forget(FileSummaries)


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


def private_temp_file() -> tuple[str, list[str]]:
    """(a random temporary name for an upload, the commands making it a new file of the SSH user's,
    mode 0600): nothing when pyinfra uploads straight to the destination (logged in as root)."""
    name = host.get_temp_filename()  # no key: a hash of a random uuid
    ssh_user = host.data.get("ssh_user")
    if not ssh_user or ssh_user == "root":
        return name, []
    # noclobber's `>` is open(O_CREAT | O_EXCL): it fails on any name that exists, a link included.
    return name, [f"(umask 077 && set -C && : > {name}) && chown {shlex.quote(ssh_user)} {name}"]


@operation()
def _put(
    src: str | Path | StringIO,
    dest: str,
    user: str | None = None,
    group: str | None = None,
    mode: str | None = None,
    create_remote_dir: bool = True,
):
    if is_in_place(summary_of(dest), sha256_of(src), user, group, mode):
        host.noop(f"file {dest} is already uploaded")
        return
    written(dest)
    for command in files.put._inner(
        src=src if isinstance(src, StringIO) else str(src),
        dest=dest,
        user=user,
        group=group,
        mode=mode,
        create_remote_dir=create_remote_dir,
    ):
        if isinstance(command, FileUploadCommand):
            temporary, create = private_temp_file()
            yield from create
            command = FileUploadCommand(command.src, command.dest, remote_temp_filename=temporary)
        yield command


# `files.put` (same arguments), checked with the host's other declared files.
put = managed(_put)
