"""Every relative link in the project's Markdown (README, docs/, the model card) leads to a file
that exists and, where it names a section, to a heading that exists: the README points into
docs/results.md section by section, and a renamed heading must not leave a dead link."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# [text](target) and ![alt](target); the target ends at the first space or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks, where `#` starts a comment, not a heading."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = github_slug(heading.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def dead_links(path: Path) -> list[str]:
    dead = []
    for line in prose_lines(path):
        # Inline code may show link syntax as an example; it is not a link.
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                dead.append(f"{target}: no file {linked.relative_to(ROOT)}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                dead.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    return dead


def test_github_slugs_follow_githubs_rules():
    assert github_slug("Edge daemon (`yuzug-edge`)") == "edge-daemon-yuzug-edge"
    assert github_slug("Trained on the daemon's framing") == "trained-on-the-daemons-framing"
    assert github_slug("GPU session 3: size (ResNet-18)") == "gpu-session-3-size-resnet-18"


def test_the_checker_finds_a_dead_file_and_a_dead_section(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[fine](other.md#a-section) [gone](missing.md) [no such](other.md#nowhere)\n"
        "[self](#page) `[in code](missing.md)`\n\n```sh\n# a comment, [not](missing.md)\n```\n"
    )
    assert dead_links(page) == [
        "missing.md: no file missing.md",
        "other.md#nowhere: no heading #nowhere in other.md",
    ]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path):
    assert dead_links(path) == []
