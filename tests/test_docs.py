"""The documentation stays true: the README stays a short front door, every link resolves, and every command shown
names a real console script whose overrides compose with the current configs (a misspelt key or an unknown group
option fails here, not in a user's shell)."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from cnnlab.config import CONF_DIR, project_root

REPO = project_root()
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_WORDS = 1500

# the primary config each console script composes (conf/<name>.yaml)
PRIMARY_CONFIG = {
    "train": "train",
    "data": "fetch",
    "summary": "summary",
    "report": "report",
    "filters": "filters",
    "activations": "activations",
    "occlusion": "occlusion",
    "adversarial": "adversarial",
    "replay": "replay",
    "bench": "bench",
    "tune": "tune",
    "robustness": "robustness",
    "attributions": "attributions",
    "verify": None,  # takes a run directory, composes no config
}
# what a shell variable the docs do not assign stands for: any path composes, since run=/checkpoint= are plain strings
PLACEHOLDER = "/tmp/cnnlab-docs-placeholder"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
SHELL_VAR = re.compile(r"\$\{?([A-Za-z_]\w*)\}?")
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
COMMAND = re.compile(r"(?<![\w/.-])cnnlab-([a-z_]+)")


def console_scripts() -> dict[str, str]:
    """`[project.scripts]` of pyproject.toml: script name -> `module:function`."""
    scripts: dict[str, str] = {}
    in_section = False
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("["):
            in_section = line.strip() == "[project.scripts]"
        elif in_section and "=" in line:
            name, target = (part.strip().strip('"') for part in line.split("=", 1))
            scripts[name] = target
    return scripts


SCRIPTS = console_scripts()


def fenced_blocks(path: Path) -> list[tuple[str, int, list[str]]]:
    """(language, line number of the first line, lines) of every fenced code block in a Markdown file."""
    blocks = []
    fence, language, start, lines = None, "", 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, language, start, lines = match.group(1), match.group(2), number + 1, []
        elif fence is not None and line.strip().startswith(fence):
            blocks.append((language, start, lines))
            fence = None
        elif fence is not None:
            lines.append(line)
    assert fence is None, f"{path.name}: a code block opened at line {start - 1} is never closed"
    return blocks


def prose(path: Path) -> str:
    """The file without its fenced code blocks."""
    text = path.read_text().splitlines()
    inside = {start - 1 + i for _, start, lines in fenced_blocks(path) for i in range(-1, len(lines) + 1)}
    return "\n".join(line for i, line in enumerate(text) if i not in inside)


def shell_lines(lines: list[str], start: int) -> list[tuple[int, str]]:
    """(line number, logical line) with backslash continuations joined and shell variables substituted: those the
    block assigns (RUN=...) by their value, any other by a placeholder path."""
    variables: dict[str, str] = {}
    logical: list[tuple[int, str]] = []
    pending, first = "", 0
    for offset, line in enumerate(lines):
        if not pending:
            first = start + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text, pending = pending + line, ""
        tokens = shlex.split(text, comments=True)
        if len(tokens) == 1 and ASSIGNMENT.match(tokens[0]):
            name, value = tokens[0].split("=", 1)
            variables[name] = value
        text = SHELL_VAR.sub(lambda m: variables.get(m.group(1), PLACEHOLDER), text)
        logical.append((first, text))
    return logical


def command_of(tokens: list[str]) -> tuple[str | None, list[str]]:
    """The console script a command line runs (`cnnlab-x ...` or `python -m <its module> ...`) and its arguments."""
    while tokens and ASSIGNMENT.match(tokens[0]):  # VAR=value prefixes set the environment only
        tokens = tokens[1:]
    if tokens and COMMAND.fullmatch(tokens[0]):
        return tokens[0], tokens[1:]
    if len(tokens) >= 3 and tokens[0] in {"python", "python3"} and tokens[1] == "-m":
        for script, target in SCRIPTS.items():
            if target.split(":")[0] == tokens[2]:
                return script, tokens[3:]
    return None, tokens


def command_lines() -> list[tuple[str, str, list[str]]]:
    """(where, script, arguments) of every line in a bash block of the README or docs that runs a cnnlab command."""
    found = []
    for path in PAGES:
        for language, start, lines in fenced_blocks(path):
            if language not in {"bash", "sh", "shell"}:
                continue
            for number, text in shell_lines(lines, start):
                script, args = command_of(shlex.split(text, comments=True))
                if script is not None:
                    found.append((f"{path.relative_to(REPO)}:{number}", script, args))
    return found


COMMAND_LINES = command_lines()


def override_sets(args: list[str]) -> list[list[str]]:
    """The Hydra overrides of one command line to compose. A sweep (`-m a=x,y b=u,v`) is composed with every swept
    key's first value, then once more for each other value of each swept key, so a misspelt value anywhere fails."""
    flags = [arg for arg in args if arg.startswith("-")]
    assert set(flags) <= {"-m", "--multirun"}, f"flags the docs should not need: {flags}"
    texts = [arg for arg in args if not arg.startswith("-")]
    parsed = OverridesParser.create().parse_overrides(texts)
    choices = [list(o.sweep_string_iterator()) if o.is_sweep_override() else [None] for o in parsed]

    def pick(position: int, value: str | None) -> list[str]:
        out = []
        for i, (override, text) in enumerate(zip(parsed, texts)):
            if not override.is_sweep_override():
                out.append(text)
            else:
                out.append(f"{override.get_key_element()}={value if i == position else choices[i][0]}")
        return out

    return [pick(-1, None)] + [pick(i, value) for i, values in enumerate(choices) for value in values[1:]]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {github_anchor(line.lstrip("#")) for line in prose(path).splitlines() if re.match(r"#{1,6} ", line)}


def test_readme_is_a_short_front_door():
    words = len(README.read_text().split())
    assert words <= MAX_README_WORDS, f"README.md has {words} words; move detail into docs/"


def test_docs_pages_exist_and_the_readme_links_each():
    assert DOCS, "docs/ has no pages"
    linked = {(README.parent / target.split("#")[0]).resolve() for target in LINK.findall(prose(README))}
    assert {page.resolve() for page in DOCS} <= linked, "every docs/ page should be reachable from the README"


def resolves(page: Path, target: str) -> bool:
    """Whether a link in `page` leads somewhere: an existing file and, for a Markdown file, an existing heading."""
    file, _, anchor = target.partition("#")
    linked = (page.parent / file).resolve() if file else page
    if not linked.exists():
        return False
    return not anchor or linked.suffix != ".md" or anchor in anchors(linked)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    relative = [target for target in LINK.findall(prose(page)) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]
    broken = [target for target in relative if not resolves(page, target)]
    assert not broken, f"{page.name}: links to nothing: {broken}"


def test_every_command_in_a_code_block_is_a_console_script():
    unknown = set()
    for page in PAGES:
        for _, _, lines in fenced_blocks(page):
            unknown |= {f"cnnlab-{name}" for name in COMMAND.findall("\n".join(lines))} - set(SCRIPTS)
    assert not unknown, f"not in pyproject.toml's [project.scripts]: {sorted(unknown)}"


def test_every_module_run_with_python_m_exists():
    missing = []
    for page in PAGES:
        for _, _, lines in fenced_blocks(page):
            for module in re.findall(r"python3? -m ([\w.]+)", "\n".join(lines)):
                if module.startswith("cnnlab") and importlib.util.find_spec(module) is None:
                    missing.append(module)
    assert not missing, f"no such module: {missing}"


def test_every_console_script_is_shown_running():
    assert {script for _, script, _ in COMMAND_LINES} == set(SCRIPTS)


# the command lines of commands that compose a config (cnnlab-verify takes a run directory instead)
COMPOSED = [line for line in COMMAND_LINES if PRIMARY_CONFIG.get(line[1].removeprefix("cnnlab-"))]


@pytest.mark.parametrize(("where", "script", "args"), COMPOSED, ids=[where for where, _, _ in COMPOSED])
def test_command_line_composes(where, script, args):
    """Each override set composes; Hydra raises on a misspelt key, group option or value."""
    config_name = PRIMARY_CONFIG[script.removeprefix("cnnlab-")]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides in override_sets(args):
            compose(config_name=config_name, overrides=overrides)
