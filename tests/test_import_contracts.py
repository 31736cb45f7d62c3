"""The positive import contract (``allowed_imports``) that ``lint-imports`` runs."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

from tests.import_contracts import AllowedImportsContract


def test_only_listed_imports_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "wirepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("import json\nfrom wirepkg.sub import x\n")
    (pkg / "sub" / "__init__.py").write_text("import msgspec\nx = 1\n")
    (pkg / "sub" / "bad.py").write_text("import os\n\nimport numpy\nimport otherpkg.deep\n")
    (tmp_path / "otherpkg").mkdir()
    (tmp_path / "otherpkg" / "__init__.py").write_text("")
    (tmp_path / "otherpkg" / "deep.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("wirepkg", "otherpkg", include_external_packages=True)

    def check(allowed: list[str]) -> list:
        contract = AllowedImportsContract(
            "test", {}, {"source_modules": ["wirepkg"], "allowed_modules": allowed}
        )
        result = contract.check(graph, verbose=False)
        assert result.kept == (not result.metadata["illegal"])
        return result.metadata["illegal"]

    assert check(["msgspec"]) == [
        ("wirepkg.sub.bad", "numpy", [3]),
        ("wirepkg.sub.bad", "otherpkg.deep", [4]),
    ]
    assert check(["msgspec", "numpy", "otherpkg"]) == []
    assert [i[1] for i in check(["numpy", "otherpkg"])] == ["msgspec"]
