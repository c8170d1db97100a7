"""docs/local-hosts.md's runnable blocks, run as written, in order, on real local hosts.

What differs from a reader's run, and only this (docs/contributing.md, "Documentation"):
- the environment: DEPLOY_HOME and DEPLOY_CONFIG are the e2e session's (its prefix and subnet, and
  app_repo the test app served on the bridge: the test machines may not reach GitHub), and the
  venv's bin/ comes first on PATH, as after `. .venv/bin/activate`;
- each `pyinfra ... deploy.py` line gets ` --exclude kong`: Kong's image comes from Docker Hub,
  which these machines cannot reach (a deploy with the Kong host would fail there, and only there).
The session's hosts are up before the first block (their bridge serves the test app), so the page's
first `provision.py` finds them running; its deploys are the hosts' first. The page ends with
`destroy --yes`: the hosts are booted again afterwards, fresh, for the modules that follow (this
one runs before test_platform.py, which wants fresh hosts).
"""

import shutil

import pytest

from tests.docs_blocks import DOCS, BlockFailed, reader_env, run_commands, runnable_commands

pytestmark = pytest.mark.e2e

PAGE = DOCS / "local-hosts.md"


def substitute(text: str) -> str:
    """` --exclude kong` after a deploy's arguments (before the reader's comment, which bash ignores)."""
    if not (text.startswith("pyinfra ") and " deploy.py" in text):
        return text
    command, mark, comment = text.partition(" #")
    return f"{command.rstrip()} --exclude kong" + (f"  #{comment}" if mark else "")


def test_the_substitution_lands_before_the_comment():
    assert substitute("pyinfra -y inventory.py deploy.py   # configures them") == (
        "pyinfra -y inventory.py deploy.py --exclude kong  # configures them"
    )
    assert substitute("python provision.py outputs   # the hosts") == "python provision.py outputs   # the hosts"


def _env(platform) -> dict[str, str]:
    return reader_env({"DEPLOY_HOME": str(platform.home), "DEPLOY_CONFIG": str(platform.config_path)})


def test_a_broken_command_in_a_copy_of_the_page_fails_naming_it(platform, tmp_path):
    copy = tmp_path / "local-hosts.md"
    shutil.copy(PAGE, copy)
    first = runnable_commands(PAGE)[0]
    assert first.text.startswith("python provision.py --provider local ")
    copy.write_text(copy.read_text().replace(first.text, first.text.replace("local", "locall", 1), 1))
    with pytest.raises(
        BlockFailed, match=rf"^local-hosts.md line {first.line}: `python provision.py --provider locall"
    ):
        run_commands(runnable_commands(copy), _env(platform), substitute)


def test_the_local_hosts_page_runs_as_written(platform):
    commands = runnable_commands(PAGE)
    assert commands[-1].text == "python provision.py destroy --yes"
    try:
        ran = run_commands(commands, _env(platform), substitute)

        def output(start: str) -> str:
            return next(text for command, text in ran if command.text.startswith(start))

        names = [f"{platform.prefix}-backend-{key}" for key in platform.base_config["backends"]]
        assert all(name in output("python provision.py outputs") for name in names)
        assert output("python provision.py ssh backend-a --").strip() == "active"
        assert "dispatch_user" in output("python provision.py psql")
        assert platform.hosts == {}
    finally:
        # Fresh hosts again for the modules after this one, whatever the page did.
        platform.recreate_hosts()
