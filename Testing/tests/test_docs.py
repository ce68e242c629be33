"""README.md and docs/*.md stay true to the code, offline: every ``dida`` command line in their code blocks names a
subcommand and options that exist (checked against ``DiDALib.cli``'s argparse parser; nothing is run), every
relative link and image resolves (a ``#anchor`` too), every Python block compiles, and docs/cli.md names every option
of every subcommand. The negative tests feed made-up commands and links to the same checks, to see them fail."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
#: Shell words that end one simple command and start another.
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}
PYTHON = {"python", "py", "python3"}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subparsers of ``dida``, by name."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    from DiDALib.cli import build_parser

    return build_parser()


def code_blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, line number of the block's first line, body) of every fenced block."""
    return [(m.group(1).lower(), text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text)]


def shell_lines(body: str, first_line: int) -> list[tuple[int, str]]:
    """The block's command lines with backslash continuations joined, each with its line number."""
    out, pending, start = [], "", first_line
    for i, line in enumerate(body.split("\n")):
        if not pending:
            start = first_line + i
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def simple_commands(line: str) -> list[list[str]]:
    """A shell line as its simple commands' words (comments dropped, split at ; && || | and parentheses)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, words = [], []
    for word in lexer:
        if word in SEPARATORS:
            commands.append(words)
            words = []
        else:
            words.append(word)
    commands.append(words)
    return [c for c in commands if c]


def is_option(word: str) -> bool:
    return word.startswith("-") and len(word) > 1 and not re.fullmatch(r"-[\d.]+", word)


def check_dida(words: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """What is wrong with one ``dida ...`` command's words (the first word is the program), as sentences."""
    subs = subcommands(parser)
    rest = words[1:]
    if not rest:
        return ["`dida` without a subcommand"]
    if rest[0] in ("--help", "-h", "--version"):
        return []
    name = rest[0]
    if name not in subs:
        return [f"`dida {name}`: no such subcommand (there are {', '.join(subs)})"]
    sub = subs[name]
    sub.format_help()  # the subcommand's --help text can be made
    actions = sub._option_string_actions
    problems = []
    i = 1
    while i < len(rest):
        word = rest[i]
        i += 1
        if not is_option(word):
            continue
        option, _, attached = word.partition("=")
        action = actions.get(option)
        if action is None:
            problems.append(f"`dida {name} {option}`: no such option")
            continue
        if action.nargs == 0:
            continue
        value = attached or (rest[i] if i < len(rest) and not is_option(rest[i]) else None)
        if not attached and value is not None:
            i += 1
        if value is None and not isinstance(action, argparse._HelpAction):
            problems.append(f"`dida {name} {option}` needs a value")
        elif action.choices is not None and value is not None and not re.search(r"[$<>{}]", value) \
                and value not in {str(c) for c in action.choices}:
            problems.append(f"`dida {name} {option} {value}`: not one of {', '.join(map(str, action.choices))}")
    return problems


def command_problems(text: str, parser: argparse.ArgumentParser, where: str) -> tuple[int, list[str]]:
    """(how many dida commands were checked, what is wrong with them) in one page's code blocks."""
    checked, problems = 0, []
    for lang, first, body in code_blocks(text):
        if lang in PYTHON:
            continue
        for line_no, line in shell_lines(body, first):
            try:
                commands = simple_commands(line)
            except ValueError as exc:  # unbalanced quotes: not a shell line (a table, JSON)
                if re.search(r"(^|[\s/])dida\s", line):
                    problems.append(f"{where}:{line_no}: cannot read the shell line ({exc})")
                continue
            for words in commands:
                starts = [j for j, w in enumerate(words) if Path(w).name == "dida"]
                for j in starts[:1]:
                    checked += 1
                    problems += [f"{where}:{line_no}: {p}" for p in check_dida(words[j:], parser)]
    return checked, problems


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than - and _ dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    prose = FENCE.sub("", text)
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", prose, re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def link_problems(page: Path) -> tuple[int, list[str]]:
    """(how many relative links and images were checked, those that do not resolve) in one page's prose."""
    text = page.read_text(encoding="utf-8")
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    checked, problems = 0, []
    for m in LINK.finditer(prose):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        checked += 1
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            problems.append(f"{page.name}: {target} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{page.name}: {target}: no heading {anchor!r} in {resolved.name}")
    return checked, problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_dida_command_in_the_docs_names_options_that_exist(page, parser):
    checked, problems = command_problems(page.read_text(encoding="utf-8"), parser, page.name)
    assert not problems, "\n".join(problems)


def test_the_readme_and_cli_pages_have_dida_commands_to_check(parser):
    """The check above is not vacuous where it matters: README's blocks and cli.md hold commands of every kind."""
    readme, _ = command_problems((ROOT / "README.md").read_text(encoding="utf-8"), parser, "README.md")
    assert readme >= 3  # the demo, dida package, dida explain
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    named = {w[1] for _, _, b in code_blocks(text) for _, line in shell_lines(b, 0) for w in simple_commands(line)
             if len(w) > 1 and Path(w[0]).name == "dida"}
    assert {"explain", "view", "audit"} <= named


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_image_resolves(page):
    _, problems = link_problems(page)
    assert not problems, "\n".join(problems)


def test_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in PAGES[1:] if f"(docs/{p.name})" not in readme]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_compile(page):
    text = page.read_text(encoding="utf-8")
    for lang, first, body in code_blocks(text):
        if lang in PYTHON:
            compile(body, f"{page.name}, the block at line {first}", "exec")


def test_the_readme_python_block_uses_only_the_public_api():
    """README's quick start imports from ``DiDALib`` only names it exports."""
    import DiDALib

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for lang, _, b in code_blocks(text) if lang in PYTHON]
    assert blocks, "README.md has no Python block"
    names = [n.strip() for b in blocks for m in re.finditer(r"from DiDALib import ([\w, ]+)", b)
             for n in m.group(1).split(",")]
    assert "DiDAEngine" in names
    assert set(names) <= set(DiDALib.__all__), set(names) - set(DiDALib.__all__)


def test_cli_page_names_every_option_of_every_subcommand(parser):
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = []
    for name, sub in subcommands(parser).items():
        m = re.search(rf"^## `dida {name}`\n(.*?)(?=^## `dida |\Z)", text, re.M | re.S)
        if m is None:
            missing.append(f"the section ## `dida {name}`")
            continue
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and f"`{option}" not in m.group(1):
                    missing.append(f"dida {name} {option}")
    assert not missing, f"docs/cli.md does not name: {missing}"


def test_readme_test_command_is_the_one_ci_runs():
    """CI (.ci/run) runs README's test command: the install and the pytest call of that one line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if "pytest -q Testing/tests" in line)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert line.split("&&", 1)[1].strip() in ci, line


# -- the checks fail where they should --------------------------------------------------------------------------

FIXTURE = """Some prose.

```bash
.venv/bin/dida explain scan.vol --grids evidence \\
    --out r/   # a comment --not-an-option
dida view r/ --point 10,20; dida demo --phantom --bscans 3
dida explain scan.vol --made-up-option 3 --out r/
dida frobnicate scan.vol
dida explain scan.vol --score sideways --out r/
dida package w.pth --out p --architecture onnx --classes A,B --check a.png b.png --force
```
"""


def test_a_made_up_option_subcommand_or_choice_fails(parser):
    checked, problems = command_problems(FIXTURE, parser, "fixture")
    assert checked == 7
    assert len(problems) == 3, problems
    made_up, frobnicate, sideways = problems
    assert made_up.startswith("fixture:7:") and "--made-up-option" in made_up
    assert frobnicate.startswith("fixture:8:") and "frobnicate" in frobnicate
    assert "sideways" in sideways and "log-odds" in sideways


def test_continuations_comments_and_separators_are_read_as_a_shell_reads_them(parser):
    good = FIXTURE.split("dida explain scan.vol --made-up-option")[0] + "```\n"
    checked, problems = command_problems(good, parser, "fixture")
    assert (checked, problems) == (3, [])


def test_a_broken_link_image_or_anchor_fails(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section, with `code`\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md) [ok](other.md#a-section-with-code) ![ok](other.md) [web](https://example.org)\n"
                    "[gone](missing.md) ![gone](img/none.png) [bad anchor](other.md#no-such-section)\n"
                    "`[not a link](nowhere.md)`\n\n```\n[in code](nowhere.md)\n```\n", encoding="utf-8")
    checked, problems = link_problems(page)
    assert checked == 6
    assert [p.split(": ")[1] for p in problems] == ["missing.md does not exist", "img/none.png does not exist",
                                                    "other.md#no-such-section"]


def test_a_python_block_that_does_not_compile_fails():
    (_, first, body), = code_blocks("text\n```python\nfrom DiDALib import (\n```\n")
    with pytest.raises(SyntaxError):
        compile(body, f"block at line {first}", "exec")
