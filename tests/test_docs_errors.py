"""docs/troubleshooting.md lists every one-line error the tools raise, and only errors the code has.

Each `UserError(...)` / `SettingsError(...)` in the code (stack/, tasks/, files/, the commands) is
read from its source: its message's pattern is the text with each `{...}` field (or any other
inserted value) as one `<>`. A listed entry is a list item starting with the message in
backticks, `<...>` standing for a value (the name inside is free, for the reader). Both sides
are compared as patterns, so a reworded message fails until its entry is reworded, and an
entry whose message left the code fails too. docs/contributing.md ("Documentation") says how.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "troubleshooting.md"
CODE = sorted(
    [path for place in ("stack", "tasks", "files") for path in (ROOT / place).rglob("*.py")]
    + [ROOT / name for name in ("provision.py", "inventory.py", "deploy.py", "rollback.py")]
)
RAISED = {"UserError", "SettingsError"}
# Raise sites whose message is made elsewhere, and the part of the page that covers them.
ELSEWHERE = {
    "stack/aws/errors.py: explain(error)": "AWS errors: explain() words each AWS error code (the AWS section)",
    "stack/settings.py: _one_line(refused)": "a value the settings models refuse (the config.yml section)",
    "stack/operate/session.py: problem": "session.failure(): ssh's own failures (the ssh section)",
}
PLACEHOLDER = re.compile(r"<[^<>`]*>")
ENTRY = re.compile(r"^- `([^`]+)`")


def normalized(text: str) -> str:
    """One `<>` per inserted value, runs of them merged: names of placeholders do not matter."""
    text = PLACEHOLDER.sub("<>", text)
    while "<><>" in text:
        text = text.replace("<><>", "<>")
    return text.removeprefix("error: ")


def _constants(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def pattern(node: ast.expr, constants: dict[str, str]) -> str | None:
    """The message's text with `<>` for each value put in; None when the text is made elsewhere."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "<>" for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = pattern(node.left, constants), pattern(node.right, constants)
        return None if left is None else left + (right if right is not None else "<>")
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    return None


def raise_sites() -> dict[str, str | None]:
    """'file: message source' -> its pattern (None: made elsewhere)."""
    sites = {}
    for path in CODE:
        tree = ast.parse(path.read_text(), str(path))
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in RAISED:
                found = pattern(node.args[0], constants)
                key = f"{path.relative_to(ROOT)}: {ast.unparse(node.args[0])}"
                sites[key] = None if found is None else normalized(found)
    return sites


def code_strings() -> list[str]:
    """Every string of the code, as a pattern (an error may also be printed by a shell script)."""
    strings = []
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.JoinedStr | ast.Constant) and (found := pattern(node, {})) is not None:
                strings.append(normalized(found))
    return strings


def listed() -> list[str]:
    return [normalized(match.group(1)) for line in PAGE.read_text().splitlines() if (match := ENTRY.match(line))]


def test_every_error_the_code_raises_is_listed_in_troubleshooting():
    entries = set(listed())
    missing = sorted(f"{site}  ->  {text}" for site, text in raise_sites().items() if text and text not in entries)
    assert missing == [], "not in docs/troubleshooting.md:\n" + "\n".join(missing)


def test_every_message_made_elsewhere_is_accounted_for():
    elsewhere = sorted(site for site, text in raise_sites().items() if text is None)
    assert elsewhere == sorted(ELSEWHERE), "add each to ELSEWHERE with the page section that covers it"


def _in_code(entry: str, strings: list[str], raised: set[str]) -> bool:
    if entry in raised:
        return True
    # Printed by a script or built in parts: its fixed words, in order, inside one string of the code.
    words = [re.escape(part) for part in entry.split("<>") if part.strip()]
    search = re.compile(".*".join(words), re.DOTALL)
    return bool(words) and any(search.search(string) for string in strings)


def test_every_listed_error_is_in_the_code():
    strings, raised = code_strings(), {text for text in raise_sites().values() if text}
    stale = [entry for entry in listed() if not _in_code(entry, strings, raised)]
    assert stale == [], "listed in docs/troubleshooting.md, found nowhere in the code:\n" + "\n".join(stale)


def test_a_reworded_message_or_a_stale_entry_is_caught(tmp_path):
    """The comparison can fail both ways (a copy of the page is changed, not the page)."""
    raised = {text for text in raise_sites().values() if text}
    entries = listed()
    assert "no hosts recorded yet: run python provision.py first" in entries
    reworded = [entry.replace("recorded yet", "recorded so far") for entry in entries]
    assert "no hosts recorded yet: run python provision.py first" in raised - set(reworded)
    assert not _in_code("the deploy exploded: <reason>; call someone", code_strings(), raised)
    assert normalized("error: <host> stopped while booting: <cause><hint> (see <dir>/console.log)") == (
        "<> stopped while booting: <> (see <>/console.log)"
    )
