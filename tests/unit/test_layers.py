"""The layers of bot/ and db/, as `ls bot/` shows them, and the rule that keeps them layers: a module
imports only from its own layer or the layers below it (imports inside functions count too).

    cli  →  sandbox  →  server  →  slack  →  reminders  →  operations  →  providers, db  →  infra  →  domain

- domain is pure: the standard library (no I/O modules), bot.providers.base and the few pure libraries
  of PURE_LIBRARIES (phone numbers, dates: data and parsing, no I/O), nothing else;
- the sandbox (simulated Slack and providers) is imported by the console and the tests only, never on
  the production path.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# lower number = lower layer; a module may import its own layer and any lower one
RANKS: dict[str, int] = {
    "bot.domain": 0,
    "bot.infra": 1,
    "bot.providers": 2,
    "db": 2,
    "bot.operations": 3,
    "bot.reminders": 4,
    "bot.slack": 5,
    "bot.server": 6,
    "bot.sandbox": 7,
    "bot.cli": 8,
    "bot.__main__": 9,
    "bot": 0,  # the package's own __init__ (the version)
}
DOMAIN_MAY_ALSO_IMPORT = {"bot.providers.base"}  # the provider-neutral vocabulary: ProviderName, states
# pure libraries the domain may use: phone-number metadata and parsing, natural-language dates
PURE_LIBRARIES = {"phonenumbers", "dateparser"}
SANDBOX_IMPORTERS = {"bot.cli.console"}
IO_MODULES = {"os", "io", "socket", "subprocess", "sqlite3", "http", "urllib", "asyncio", "threading", "logging",
              "pathlib", "shutil", "tempfile", "ssl", "select", "signal", "multiprocessing", "sys"}


def layer_of(module: str) -> str | None:
    """The layer a dotted module belongs to (the longest RANKS prefix), None for other packages."""
    matches = [name for name in RANKS if module == name or module.startswith(name + ".")]
    return max(matches, key=len) if matches else None


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str) -> list[str]:
    """Every module `path` imports, relative imports resolved."""
    found: list[str] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names if layer_of(f"{base}.{alias.name}")]
    return found


def pure_exception(imported: str) -> bool:
    return any(imported == name or imported.startswith(name + ".") for name in DOMAIN_MAY_ALSO_IMPORT)


def violations(root: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted([*root.joinpath("bot").rglob("*.py"), *root.joinpath("db").rglob("*.py")]):
        if "migrations" in path.parts:
            continue
        module = module_name(root, path)
        own = layer_of(module)
        assert own is not None, f"{module} is in no layer: add its package to RANKS"
        for imported in imports(path, module):
            target = layer_of(imported)
            top = imported.split(".")[0]
            if own == "bot.domain" and target is None and (top in IO_MODULES or (
                    top not in sys.stdlib_module_names and top not in PURE_LIBRARIES)):
                problems.append(f"{module} imports {imported}: the domain is pure (no I/O, no third-party)")
            if target is None or target == own:
                continue
            if target == "bot.sandbox" and module not in SANDBOX_IMPORTERS:
                problems.append(f"{module} imports {imported}: only the console and the tests use the sandbox")
            elif own == "bot.domain" and not pure_exception(imported) and target != "bot":
                problems.append(f"{module} imports {imported}: the domain imports only itself and "
                                "bot.providers.base")
            elif RANKS[target] > RANKS[own] and not (own == "bot.domain" and pure_exception(imported)):
                problems.append(f"{module} ({own}) imports {imported} ({target}): imports point downwards only")
    return problems


def test_imports_point_only_downwards_and_the_domain_stays_pure():
    assert violations(ROOT) == []


def test_every_folder_of_bot_is_a_layer():
    folders = {p.name for p in (ROOT / "bot").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert {f"bot.{name}" for name in folders} <= set(RANKS)
    loose = sorted(p.name for p in (ROOT / "bot").glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], "every module of bot/ belongs in a layer folder"


def test_the_check_catches_an_upward_import_and_a_production_use_of_the_sandbox(tmp_path):
    for folder in ("bot/domain", "bot/slack", "bot/server", "bot/sandbox", "db"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "bot" / "__init__.py").write_text("")
    (tmp_path / "bot/domain/policy.py").write_text("import sqlite3\nfrom bot.slack import blocks\n")
    (tmp_path / "db/store.py").write_text("def late():\n    from bot.server import runtime\n")
    (tmp_path / "bot/server/http.py").write_text("from bot.sandbox import slack\n")
    found = violations(tmp_path)
    assert any("bot.domain.policy imports sqlite3" in p for p in found)
    assert any("bot.domain.policy imports bot.slack" in p for p in found)
    assert any("db.store (db) imports bot.server" in p for p in found)
    assert any("bot.server.http imports bot.sandbox" in p for p in found)
