"""Documents cite only what the repository holds: every relative link in README.md and docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    targets = [t for t in LINK.findall(document.read_text(encoding="utf-8")) if "://" not in t]
    missing = [t for t in targets if not (document.parent / t).exists()]
    assert not missing, f"{document.relative_to(ROOT)} links to files the repository does not hold: {missing}"


def test_semantics_cites_the_seed_document_in_the_repository() -> None:
    """The founding public contract is part of the repository, where docs/semantics.md points."""
    semantics = (ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")
    assert "](seed/get-campaign-stats.md)" in semantics
    assert "getCampaignStats" in (ROOT / "docs" / "seed" / "get-campaign-stats.md").read_text(
        encoding="utf-8"
    )
