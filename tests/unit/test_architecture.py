"""The layers stay honest: the domain imports only the standard library and itself, persistence
never the server, and the data tools only the settings of the server."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_top_level_modules(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_domain_imports_only_the_standard_library_and_itself() -> None:
    allowed = set(sys.stdlib_module_names) | {"domain", "__future__"}
    offenders = {
        module: files
        for module, files in imported_top_level_modules("domain").items()
        if module not in allowed
    }
    assert offenders == {}


def test_persistence_does_not_import_the_server() -> None:
    imports = imported_top_level_modules("persistence")
    assert "server" not in imports
    assert not {"grpc", "google", "biome"} & set(imports)


def test_only_the_command_line_reaches_the_data_tools() -> None:
    for package in ("domain", "persistence", "server"):
        files = imported_top_level_modules(package).get("datatools", set())
        assert files <= {"server/cli.py"}, package


def test_the_data_tools_take_from_the_server_only_its_settings_and_the_legacy_hash_checker() -> (
    None
):
    server_modules = set()
    for path in sorted((ROOT / "datatools").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] == "server":
                    server_modules.add(node.module)
    # And import-legacy's hash checker: pure hashlib/bcrypt/argon2 parsing, no grpc, no storage.
    assert server_modules <= {
        "server.settings",
        "server.from_settings",
        "server.crypto.legacy_hashes",
    }
    assert not {"grpc", "google", "biome"} & set(imported_top_level_modules("datatools"))
