"""Every fenced code block of README.md runs as written, offline, on a fresh install.

Blocks are read from README.md in order. A block that needs what a test cannot have (a real
dataset, ImageNet weights, GPUs, the whole benchmark) is preceded by a marker naming why,
``<!-- no-test: needs ILSVRC -->``; every other block must be ``bash``, ``python`` or ``toml``
and is run: the shell blocks in order through bash (``set -euo pipefail``) in one shared
working folder with this environment's ``wsolbench`` first on PATH (they continue from each
other, as a reader's terminal does), each Python block on its own in a fresh interpreter (a
reader pastes one at a time), each TOML block parsed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*no-test:\s*(\S.*?)\s*-->$")
RUNNABLE = ("bash", "python", "toml")


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    skip: str | None  # the no-test marker's reason

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.language or 'no language'})"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, each with the no-test reason written on the
    nearest non-blank line before its opening fence."""
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = next((j for j in range(index + 1, len(lines)) if lines[j] == "```"), None)
        assert end is not None, f"README.md:{index + 1}: code block never closed"
        before = next((lines[j] for j in range(index - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(before.strip())
        code = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(Block(index + 1, opening.group(1), code, marker.group(1) if marker else None))
        index = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
TESTED = [block for block in BLOCKS if block.skip is None]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)  # the installed package, as a reader has it
    return env


def _run(command: list[str], block: Block, cwd: Path) -> None:
    result = subprocess.run(
        command, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (
        f"{block} failed (exit {result.returncode}):\n{block.code}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )


def test_every_block_runs_or_names_why_not():
    """An unmarked block is one the tests run; a marked one says why it cannot be run."""
    assert len(BLOCKS) >= 10, "README.md's code blocks were not found"
    for block in BLOCKS:
        if block.skip is None:
            assert block.language in RUNNABLE, (
                f"{block}: not a {', '.join(RUNNABLE)} block; run it or mark it "
                "<!-- no-test: why -->"
            )
    languages = [block.language for block in TESTED]
    assert languages.count("bash") >= 3 and languages.count("python") >= 6, languages


def test_readme_parser_reads_markers_and_fences():
    text = "x\n<!-- no-test: needs CUB -->\n\n```bash\nls\n```\n```python\nprint(1)\n```\n"
    blocks = readme_blocks(text)
    assert [(b.line, b.language, b.code, b.skip) for b in blocks] == [
        (4, "bash", "ls\n", "needs CUB"),
        (7, "python", "print(1)\n", None),
    ]


@pytest.mark.parametrize("block", [b for b in TESTED if b.language == "toml"], ids=str)
def test_toml_block_parses(block):
    assert tomllib.loads(block.code)


@pytest.mark.slow  # a fresh interpreter per block, some build a ResNet50 (10-40 s each)
@pytest.mark.parametrize("block", [b for b in TESTED if b.language == "python"], ids=str)
def test_python_block_runs(block, tmp_path):
    _run([sys.executable, "-c", block.code], block, tmp_path)


@pytest.mark.slow  # trains a network for one epoch on the tiny benchmark (about a minute)
def test_shell_blocks_run_in_order(tmp_path):
    assert (Path(sys.executable).parent / "wsolbench").is_file(), "wsolbench is not installed"
    ran = []
    for block in (b for b in TESTED if b.language == "bash"):
        _run(["bash", "-euo", "pipefail", "-c", block.code], block, tmp_path)
        ran.append(block.line)
    assert ran == [b.line for b in BLOCKS if b.language == "bash" and b.skip is None]
    assert (tmp_path / "results.json").is_file() and (tmp_path / "all.json").is_file()
