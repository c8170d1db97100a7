"""The backends' settings (config.yml keys app_repo ... switch_batch_size), their defaults and checks."""

import shlex
from typing import Annotated

from stack.settings_types import Flag, Items, Section, Text, Whole, setting

# Sprint2's newest commit where migrate, both populate scripts and /despachos/reporte/ work (docs/deploying.md:
# "Which commit of Sprint2"); a commit, not a branch, so an upstream push never breaks a working setup.
SPRINT2_WORKING_COMMIT = "b0abfcb9949fc9fd2eb30d50c22d591d4177dfa0"

# Django management commands that ask on a terminal unless told not to: a deploy has no terminal,
# so without --noinput they would die (EOFError) or, worse, wait.
ASKING = ("makemigrations", "migrate", "collectstatic", "flush", "createsuperuser")


class Command(Text):
    """A shell command run in the release with its venv; never one that would wait for a terminal."""

    def more(self, value: str) -> str | None:
        problem = super().more(value)
        if problem:
            return problem
        try:
            words = shlex.split(value)
        except ValueError as error:
            return f"expected a shell command, got {value!r} ({error})"
        if "manage.py" in words:
            asking = [word for word in words if word in ASKING]
            if asking and not {"--noinput", "--no-input"} & set(words):
                return f"{value!r} would wait for answers on a terminal the deploy does not have: add --noinput"
        return None


class PythonScript(Command):
    """A populate command runs inside the deploy's database transaction, in the same Python."""

    def more(self, value: str) -> str | None:
        problem = super().more(value)
        if problem:
            return problem
        words = shlex.split(value)
        if len(words) < 2 or words[0] not in ("python", "python3") or words[1].startswith("-"):
            return (
                f"expected 'python SCRIPT [ARGUMENTS]' (run once, inside one database transaction with its "
                f"marker), got {value!r}"
            )
        return None


class BackendSettings(Section):
    app_repo: Annotated[str, Text()] = setting(
        default="https://github.com/mr-torres-d-ojedas/Sprint2.git", description="Git URL of the Django application."
    )
    app_ref: Annotated[str, Text()] = setting(
        default=SPRINT2_WORKING_COMMIT,
        description="Branch, tag or commit of app_repo to deploy (default: Sprint2's newest commit that works).",
    )
    app_port: Annotated[int, Whole(1024, 65535)] = setting(
        default=8080, description="Port gunicorn listens on, on each backend."
    )
    app_setup_commands: Annotated[list[Annotated[str, Command()]], Items(unique=False)] = setting(
        default=["python manage.py makemigrations --noinput", "python manage.py migrate --noinput"],
        description="Run on one backend at every deploy that changes the code (in the checkout, with the venv).",
    )
    app_populate_commands: Annotated[list[Annotated[str, PythonScript()]], Items()] = setting(
        default=["python populate.py", "python populateDespachos.py"],
        description="Each run at most once in the life of the database, inside one transaction with its marker.",
    )
    allow_destructive_migrations: Annotated[bool, Flag()] = setting(
        default=False,
        description="Apply new migrations not known to keep the data (drop, rename, narrow, RunPython, RunSQL...).",
    )
    releases_keep: Annotated[int, Whole(2, 50)] = setting(
        default=3, description="Releases kept on each backend (the live one and those to roll back to)."
    )
    switch_batch_size: Annotated[int, Whole(1, 100)] = setting(
        default=1,
        description="Backends switched to a new release at a time, each batch after the last answers healthy.",
    )
