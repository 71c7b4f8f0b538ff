"""The committed docs/placement-factors.md matches the catalogue, and the check can tell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from novacron.coordinator.placement import catalog_doc
from novacron.coordinator.placement.catalog import catalog


def test_committed_doc_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "novacron.coordinator.placement.catalog_doc", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_fails_on_a_stale_or_missing_file_and_write_fixes_it(tmp_path: Path) -> None:
    doc = tmp_path / "placement-factors.md"
    assert catalog_doc.main(["--check", "--output", str(doc)]) == 1
    assert catalog_doc.main(["--output", str(doc)]) == 0
    assert catalog_doc.main(["--check", "--output", str(doc)]) == 0
    doc.write_text(doc.read_text().replace("| 3 |", "| 2.5 |", 1))
    assert catalog_doc.main(["--check", "--output", str(doc)]) == 1


def test_one_row_per_factor_grouped_by_category() -> None:
    factors = catalog()
    text = catalog_doc.render(factors)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(factors)
    for factor in factors:
        assert sum(f"| `{factor.factor_id}` |" in row for row in rows) == 1
    categories = [row.split(" | ")[2] for row in rows]
    assert categories == sorted(categories, key=[c.value for c in type(factors[0].category)].index)
