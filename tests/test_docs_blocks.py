"""tests/docs_blocks.py: which commands a page marks runnable, and that a failing one stops the run."""

import pytest

from tests.docs_blocks import DOCS, BlockFailed, reader_env, run_commands, runnable_commands

PAGE = """# A page

<!-- runnable -->
```sh
echo one            # a comment the reader sees
# a line that is only a comment

echo two
```

```sh
echo not-marked
```

<!-- runnable -->
```bash
false
echo never
```
"""


def test_only_the_marked_blocks_are_read_one_command_per_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    commands = runnable_commands(page)
    assert [(command.line, command.text) for command in commands] == [
        (5, "echo one            # a comment the reader sees"),
        (8, "echo two"),
        (17, "false"),
        (18, "echo never"),
    ]


def test_the_first_failing_command_stops_the_run_naming_its_page_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    with pytest.raises(BlockFailed, match=r"^page.md line 17: `false` exited 1:"):
        run_commands(runnable_commands(page), reader_env())


def test_a_mark_without_a_shell_block_is_an_error_of_the_page(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- runnable -->\nnot a block\n")
    with pytest.raises(ValueError, match="is not followed by a ```sh block"):
        runnable_commands(page)


@pytest.mark.parametrize("name", ["getting-started.md", "local-hosts.md"])
def test_the_tested_pages_mark_blocks(name):
    assert runnable_commands(DOCS / name)
