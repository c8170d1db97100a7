"""The shell blocks of a docs page marked runnable, and running them as a reader would.

A block is runnable when the line `<!-- runnable -->` (invisible on the site) comes right before
its opening fence (```sh or ```bash). Each line of it is one command, run from the checkout with
`bash -o pipefail -c`, in page order, stopping at the first that fails: BlockFailed names its page,
line and the tail of its output. The only changes a test may make are the environment it passes
and `substitute(command) -> command`, both documented in docs/contributing.md ("Documentation").
"""

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARK = "<!-- runnable -->"
FENCES = ("```sh", "```bash")


@dataclass(frozen=True)
class Command:
    page: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.page.name} line {self.line}: {self.text}"


class BlockFailed(AssertionError):
    pass


def runnable_commands(page: Path) -> list[Command]:
    """Every command of the page's runnable blocks, in order. A mark not before a shell block,
    or a block not closed, is an error of the page (so a mark cannot silently run nothing)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    commands = []
    for number, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        if number + 1 >= len(lines) or lines[number + 1].strip() not in FENCES:
            raise ValueError(f"{page.name} line {number + 1}: {MARK} is not followed by a ```sh block")
        end = next((index for index in range(number + 2, len(lines)) if lines[index].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{page.name} line {number + 2}: the runnable block is not closed")
        for index in range(number + 2, end):
            text = lines[index].strip()
            if text and not text.startswith("#"):
                commands.append(Command(page, index + 1, text))
    return commands


def reader_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment after `. .venv/bin/activate`: this venv's bin/ first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", **(extra or {})}


def run_commands(
    commands: list[Command],
    env: dict[str, str],
    substitute: Callable[[str], str] = lambda text: text,
    timeout: float = 1800,
) -> list[tuple[Command, str]]:
    """Run each command; its output (stdout + stderr) for each. BlockFailed at the first failure."""
    outputs = []
    for command in commands:
        text = substitute(command.text)
        completed = subprocess.run(
            ["bash", "-o", "pipefail", "-c", text],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = completed.stdout + completed.stderr
        if completed.returncode != 0:
            shown = text if text == command.text else f"{command.text}  (run as: {text})"
            raise BlockFailed(
                f"{command.page.name} line {command.line}: `{shown}` exited {completed.returncode}:\n{output[-4000:]}"
            )
        outputs.append((command, output))
    return outputs
