"""Two costs pyinfra 3 pays on every operation call, removed without changing what it computes.

1. Operation order. pyinfra orders operations by the line numbers of the deploy code that called
   them (`pyinfra.api.util.get_operation_order_from_stack`). It gets them with `inspect.stack()`
   and `inspect.getframeinfo(frame)`, which for each of ~20 frames, twice, look for the source
   file and read one line of it (`findsource` -> `getmodule`, which scans every loaded module),
   for a file name and a line number the frame holds itself. Here the frames are walked and each
   gives its code's file name and its line number: the same values, no file looked at.
2. Global arguments. `pyinfra.api.arguments.all_global_arguments()` evaluates the type hints of
   its argument classes (`typing.get_type_hints`) on every operation and fact call; they are
   fixed for the life of the process, so the first answer is kept.

Measured (issue 12), a no-change run of 10 hosts: the controller's CPU went from 3.2-3.3 s to
2.4 s with `context=0` and the cache, and preparing the operations from 0.44 s to 0.23 s more
with the frames walked here. Both are plain replacements of module-level names that pyinfra looks
up when called (`util.stack`, `util.getframeinfo`, `all_global_arguments`); `apply()` leaves
pyinfra as it is when those names are not there (a pyinfra that changed them), so an upgrade can
only lose the speed, not break a run. tests/stack/test_pyinfra_speedups.py checks that the order
computed is the same with them as without.
"""

import functools
import importlib.metadata
import inspect
import sys
from types import FrameType
from typing import Any

from pyinfra.api import arguments, facts, util


def _stack_without_source(context: int = 0) -> list[inspect.FrameInfo]:
    """`inspect.stack()` as pyinfra uses it: from the frame that called it outwards (ours is left
    out, as inspect leaves out its own), with no source line (`context` is not used)."""
    frames: list[inspect.FrameInfo] = []
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        frames.append(inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name, None, None))
        frame = frame.f_back
    return frames


def _frameinfo_without_source(frame: Any, context: int = 0) -> inspect.Traceback:
    """`inspect.getframeinfo(frame)`'s file name and line, with no source line (for a frame, as
    pyinfra passes; `context` is not used)."""
    return inspect.Traceback(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name, None, None)


# The pyinfra release these replacements were checked against (requirements.txt pins the same).
CHECKED = "3.10.0"


def pyinfra_version() -> str | None:
    try:
        return importlib.metadata.version("pyinfra")
    except importlib.metadata.PackageNotFoundError:
        return None


def apply() -> list[str]:
    """Install both where pyinfra is the version checked and has the names they replace; returns
    what was installed (nothing for any other version)."""
    done: list[str] = []
    if pyinfra_version() != CHECKED:
        return done
    if callable(getattr(util, "stack", None)) and callable(getattr(util, "getframeinfo", None)):
        util.stack, util.getframeinfo = _stack_without_source, _frameinfo_without_source
        done.append("operation order without source reads")
    original = getattr(arguments, "all_global_arguments", None)
    if callable(original) and not hasattr(original, "cache_info"):
        kept = functools.cache(original)
        arguments.all_global_arguments = kept
        if getattr(facts, "all_global_arguments", None) is original:
            facts.all_global_arguments = kept
        done.append("global arguments evaluated once")
    return done
