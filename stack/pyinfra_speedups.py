"""Two costs pyinfra 3 pays on every operation call, removed without changing what it computes.

1. Operation order. pyinfra orders operations by the line numbers of the deploy code that called
   them (`pyinfra.api.util.get_operation_order_from_stack`). It gets them with `inspect.stack()`
   and `inspect.getframeinfo(frame)`, whose default `context=1` also reads one line of source for
   each frame (`findsource` -> `getmodule`, which scans every loaded module): ~35 frames per call,
   for a number the source line is never used in. With `context=0` the frames, file names and line
   numbers are the same and no source is read.
2. Global arguments. `pyinfra.api.arguments.all_global_arguments()` evaluates the type hints of
   its argument classes (`typing.get_type_hints`) on every operation and fact call; they are
   fixed for the life of the process, so the first answer is kept.

Measured (issue 12): the controller's CPU for a no-change run of 10 hosts went from 3.2-3.3 s to
2.4 s. Both are plain replacements of module-level
names that pyinfra looks up when called; `apply()` leaves pyinfra as it is when those names are
not there (a pyinfra that changed them), so an upgrade can only lose the speed, not break a run.
"""

import functools
import inspect

from pyinfra.api import arguments, facts, util

# partial, not a wrapper function: a frame of ours would be in the stack pyinfra reads.
_stack_without_source = functools.partial(inspect.stack, 0)
_frameinfo_without_source = functools.partial(inspect.getframeinfo, context=0)


def apply() -> list[str]:
    """Install both where pyinfra has the names they replace; returns what was installed."""
    done = []
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
