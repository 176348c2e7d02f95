"""The README's library examples run as written; its links into docs/ lead somewhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _example(marker: str) -> str:
    """The README's one ``python`` block that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (code,) = [block for block in blocks if marker in block]
    assert isinstance(code, str)
    return code


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_example_runs() -> None:
    stdout = _run(_example("async def echo"))
    assert "b'hello'" in stdout
    assert "server listens on /ip4/127.0.0.1/tcp/" in stdout


def test_readme_dht_example_runs() -> None:
    stdout = _run(_example("protocols.kad"))
    assert re.search(r"^stored at [12] peers$", stdout, flags=re.MULTILINE), stdout
    assert stdout.splitlines()[-1] == "b'hello'"


def test_readme_discovery_example_runs() -> None:
    stdout = _run(_example("protocols.discovery import"))
    assert stdout.splitlines() == ["bootstrap True"]


def test_readme_membership_example_runs() -> None:
    stdout = _run(_example("protocols.membership"))
    assert stdout.splitlines()[-1] == "2 True"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_docs_links_point_at_files_and_headings() -> None:
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", README.read_text())
    assert links, "the README links no docs"
    for path, anchor in links:
        target = README.parent / path
        assert target.is_file(), f"README links a missing {path}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), flags=re.MULTILINE)
            assert anchor in {_slug(h) for h in headings}, f"no #{anchor} in {path}"
