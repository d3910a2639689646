"""README.md: one page, two Quick-start commands that CI runs, links that lead somewhere."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _quick_start() -> list[str]:
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", README, re.M | re.S)
    assert section, "README.md has no '## Quick start' section"
    block = re.search(r"^```bash\n(.*?)^```", section.group(1), re.M | re.S)
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_is_one_page():
    assert len(README.splitlines()) <= 200


def test_the_quick_start_is_two_commands_and_ci_runs_the_second():
    commands = _quick_start()
    assert commands == ["pip install . && featx demo", "pip install '.[test]' && python -m pytest"], commands
    assert commands[1] in (REPO / ".ci" / "run").read_text()


def test_every_link_of_the_readme_leads_to_a_file_of_the_repository():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10, links
    assert [link for link in local if not (REPO / link).is_file()] == []
