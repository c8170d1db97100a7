"""docs/getting-started.md's runnable blocks, run as written against the moto server (AWS_ENDPOINT_URL).

Only `provision.py plan` is marked there: the other AWS commands wait for SSH on real instances,
which moto's made-up addresses never answer (the same commands run on local hosts in
tests/e2e/test_docs_e2e.py). The environment is the AWS tests' (moto's endpoint, DEPLOY_HOME,
DEPLOY_CONFIG with the Learner Lab settings the page shows); the command text is not changed.
"""

import shutil

import pytest

from tests.docs_blocks import DOCS, BlockFailed, reader_env, run_commands, runnable_commands

PAGE = DOCS / "getting-started.md"


def test_the_getting_started_blocks_run_as_written_and_change_nothing(aws):
    aws.configure(region="us-east-1", admin_cidr="203.0.113.7/32")
    aws.recorder.start()
    outputs = run_commands(runnable_commands(PAGE), reader_env(), timeout=120)
    assert [command.text for command, _ in outputs] == ["python provision.py plan"]
    assert "Plan: 14 to add, 0 to change, 0 to destroy." in outputs[0][1]
    assert aws.recorder.mutating() == []


def test_a_broken_command_in_a_copy_of_the_page_fails(aws, tmp_path):
    copy = tmp_path / "getting-started.md"
    shutil.copy(PAGE, copy)
    copy.write_text(copy.read_text().replace("python provision.py plan\n", "python provision.py plann\n", 1))
    with pytest.raises(BlockFailed, match=r"getting-started.md line \d+: `python provision.py plann` exited 2"):
        run_commands(runnable_commands(copy), reader_env(), timeout=120)
