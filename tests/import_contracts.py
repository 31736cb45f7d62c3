"""An import-linter contract that lists what a package *may* import (``lint-imports`` loads it
through ``contract_types`` in ``pyproject.toml``).

import-linter's own types list what is forbidden, so a new dependency slips through unnoticed:
``server/protocol`` could import scipy or ``server.api``, ``app`` could import PySide6. This one
is positive: every module under ``source_modules`` may import the standard library, its own
package and the ``allowed_modules`` (packages, with their descendants), and nothing else. A new
third-party import then fails until someone adds it to the list on purpose.
"""

from __future__ import annotations

import sys

import grimp
from importlinter import Contract, ContractCheck, fields, output


def _within(module: str, packages: set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


class AllowedImportsContract(Contract):
    """Options: ``source_modules`` (packages checked), ``allowed_modules`` (what they may import
    besides the standard library and themselves)."""

    type_name = "allowed_imports"

    source_modules = fields.ListField(subfield=fields.StringField())
    allowed_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        sources = set(self.source_modules)  # type: ignore[arg-type]
        allowed = set(self.allowed_modules) | sources  # type: ignore[operator]
        illegal = []
        for module in sorted(graph.modules):
            if not _within(module, sources):
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                if imported.split(".")[0] in sys.stdlib_module_names or _within(imported, allowed):
                    continue
                lines = sorted(
                    d["line_number"]
                    for d in graph.get_import_details(importer=module, imported=imported)
                )
                illegal.append((module, imported, lines))
            output.verbose_print(verbose, f"{module}: checked")
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Imports outside the allowed list:", bold=False)
        output.new_line()
        for importer, imported, lines in check.metadata["illegal"]:
            where = ", ".join(map(str, lines))
            output.print_error(f"- {importer} -> {imported} (l.{where})", bold=False)
        output.new_line()
        output.print("Import it through an allowed package, or add it to allowed_modules.")
