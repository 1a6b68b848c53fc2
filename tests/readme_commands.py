"""The shell commands of a README.md section, so that CI and tests run what the README says.

    python3 tests/readme_commands.py "Set up"      # one command a line

A section is a ``## `` heading that starts with the given title; its commands are the lines of
the first fenced ``bash`` block under it (blank and comment-only lines dropped, lines ending in a
backslash joined). Standard library only: ``.ci/run`` calls it before any environment exists.
"""
from __future__ import annotations

import os
import sys

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def section_commands(title: str, path: str = README) -> list[str]:
    """Commands of the first ```bash block of the section headed ``## <title>...``."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("## ") and line[3:].startswith(title)), None)
    if start is None:
        raise ValueError(f"{path} has no section '## {title}'")
    commands: list[str] = []
    in_block = False
    pending = ""
    for line in lines[start + 1:]:
        if not in_block and line.startswith("## "):
            break  # the next section: this one has no bash block
        if not in_block:
            in_block = line.strip() == "```bash"
            continue
        if line.strip().startswith("```"):
            if commands:
                return commands
            raise ValueError(f"the bash block of '## {title}' in {path} is empty")
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1].rstrip() + " "
            continue
        pending = ""
        if text and not text.startswith("#"):
            commands.append(text)
    raise ValueError(f"{path}: section '## {title}' has no complete ```bash block")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tests/readme_commands.py SECTION-TITLE")
    try:
        print("\n".join(section_commands(sys.argv[1])))
    except (OSError, ValueError) as e:
        sys.exit(f"readme_commands: {e}")
