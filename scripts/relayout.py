#!/usr/bin/env python3
"""The mechanical part of the relayout (issue 13): move modules to their layer and rewrite every
reference to them. Standard library only; run from anywhere inside the checkout:

    python3 scripts/relayout.py            # move and rewrite (idempotent: a second run changes nothing)
    python3 scripts/relayout.py --check    # exit 1 and list what a run would still change

What it does, in order:

1. `git mv` every module of MOVES (and every file under a FOLDER_MOVES folder, including ones added
   after this script was written) to its new place; a module named in MOVES that does not exist is
   skipped (e.g. a pure module another branch may or may not have added). The layer packages get an
   `__init__.py` (LAYER_PACKAGES) when they have none.
2. Rewrite, in every tracked text file (code, tests, bench, scripts, docs, configs), each reference
   to a moved module: `from bot import commands` → `from bot.domain import commands`,
   `from bot.commands import …`, `import bot.runtime`, dotted names in strings (`"bot.commands.parse"`
   for monkeypatch, `"bot.server.runtime:app"` for uvicorn, logger names) and file paths in prose
   (`bot/commands.py`, `tests/fakes/`).
3. Sort the rewritten imports with ruff (`ruff check --select I --fix`), when ruff is installed
   (`.venv/bin/ruff` or on PATH): a moved module's import changes its place in the import block.
4. Warn about top-level modules of `bot/` that no MOVES entry places: add them to MOVES and run again.

To extend it: add a line to MOVES (old dotted module → new dotted module). That is all; paths, imports
and strings follow from it.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

# --- the table: old module → new module ------------------------------------------------------------
MOVES: list[tuple[str, str]] = [
    # domain: pure (parsing, policy, ids, time); imports nothing but domain and bot.providers.base
    ("bot.commands", "bot.domain.commands"),
    ("bot.ids", "bot.domain.ids"),
    ("bot.policy", "bot.domain.policy"),
    ("bot.durations", "bot.domain.durations"),
    ("bot.clock", "bot.domain.clock"),
    ("bot.operations.results", "bot.domain.results"),
    # pure modules other branches add (moved when they exist)
    ("bot.phones", "bot.domain.phones"),
    ("bot.text_limits", "bot.domain.text_limits"),
    ("bot.slack_text", "bot.domain.slack_text"),
    ("bot.when", "bot.domain.when"),
    ("bot.quiet_hours", "bot.domain.quiet_hours"),
    ("bot.approval_rules", "bot.domain.approval_rules"),
    # infra: settings, logging, metrics, the per-loop HTTP session
    ("bot.settings", "bot.infra.settings"),
    ("bot.logs", "bot.infra.logs"),
    ("bot.metrics", "bot.infra.metrics"),
    ("bot.loop_session", "bot.infra.loop_session"),
    # operations: the container and the Notifier port the use cases work with
    ("bot.services", "bot.operations.services"),
    ("bot.notify", "bot.operations.notify"),
    # server: assembling and running the bot, its HTTP endpoints
    ("bot.http", "bot.server.http"),
    ("bot.webhooks", "bot.server.webhooks"),
    ("bot.runtime", "bot.server.runtime"),
    # cli: the shell commands
    ("bot.audit_cli", "bot.cli.audit"),
    ("bot.console", "bot.cli.console"),
    ("bot.console_render", "bot.cli.console_render"),
    # sandbox: the simulated Slack and providers (see FOLDER_MOVES) and the HTTP harness
    ("tests.support.harness", "bot.sandbox.harness"),
]

# Every file in the old package moves, whatever its name (new fakes included).
FOLDER_MOVES: list[tuple[str, str]] = [
    ("tests.fakes", "bot.sandbox"),
]

# A module that becomes a package of the same name (its code moves to `__init__.py`, split later).
BECOME_PACKAGES: list[str] = ["bot.reminders"]

LAYER_PACKAGES: dict[str, str] = {
    "bot.domain": "Pure domain: commands, ids, policy, durations, the clock and use-case results.\n\n"
                  "No I/O; imports nothing but this package and bot.providers.base.\n",
    "bot.infra": "Infrastructure shared by every layer: settings, logging, metrics, the per-loop HTTP session.",
    "bot.server": "Assembling and running the bot: the ASGI app (Slack events, health, metrics, webhooks).",
    "bot.cli": "The shell commands: `python -m bot audit`, `verify-ledger` and the local console.",
}

TEXT_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".txt", ".sh", ".mako", ".json"}
TEXT_NAMES = {"Makefile", "Dockerfile", ".dockerignore", ".gitignore", "run"}
VENDORED = "tests/specs/"  # provider specs copied from their vendors: only its README is ours


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,  # noqa: S603, S607
                          text=True).stdout


def module_file(root: Path, module: str) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def package_dir(root: Path, module: str) -> Path:
    return root.joinpath(*module.split("."))


def rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# --- 1. moves --------------------------------------------------------------------------------------
def file_moves(root: Path) -> list[tuple[Path, Path]]:
    """(source, target) for every file to move, whether or not it has moved already."""
    moves: list[tuple[Path, Path]] = []
    for old, new in MOVES:
        moves.append((module_file(root, old), module_file(root, new)))
    for old, new in FOLDER_MOVES:
        source, target = package_dir(root, old), package_dir(root, new)
        tracked = git(root, "ls-files", "--", rel(root, source)).splitlines() if source.is_dir() else []
        for name in tracked:
            path = root / name
            moves.append((path, target / path.relative_to(source)))
    for module in BECOME_PACKAGES:
        moves.append((module_file(root, module), package_dir(root, module) / "__init__.py"))
    return moves


def move_files(root: Path, dry_run: bool) -> list[str]:
    done: list[str] = []
    for source, target in file_moves(root):
        if not source.exists():
            continue  # moved already, or a module this tree never had
        if target.exists():
            sys.exit(f"relayout: both {rel(root, source)} and {rel(root, target)} exist; merge them by hand")
        done.append(f"move {rel(root, source)} → {rel(root, target)}")
        if not dry_run:
            target.parent.mkdir(parents=True, exist_ok=True)
            git(root, "mv", rel(root, source), rel(root, target))
    for package, docstring in LAYER_PACKAGES.items():
        init = package_dir(root, package) / "__init__.py"
        if package_dir(root, package).is_dir() and not init.exists():
            done.append(f"create {rel(root, init)}")
            if not dry_run:
                init.write_text(f'"""{docstring}"""\n', encoding="utf-8")
                git(root, "add", rel(root, init))
    if not dry_run:
        for old, _ in FOLDER_MOVES:
            remove_if_empty(package_dir(root, old))
    return done


def remove_if_empty(folder: Path) -> None:
    """An old folder left with only bytecode caches goes (it would import as a namespace package)."""
    if folder.is_dir() and not any(p.is_file() and "__pycache__" not in p.parts for p in folder.rglob("*")):
        shutil.rmtree(folder)


# --- 2. rewrites -----------------------------------------------------------------------------------
def module_table(root: Path) -> dict[str, str]:
    """Old dotted name → new, for modules and for moved folders (whose prefix maps every module in it)."""
    table = dict(MOVES)
    table.update(FOLDER_MOVES)
    return table


def renamed(name: str, table: dict[str, str]) -> str | None:
    """The new dotted name of `name` (a module, or something inside one), or None when it stays."""
    for old in sorted(table, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return table[old] + name[len(old):]
    return None


FROM_IMPORT = re.compile(
    r"^(?P<indent>[ \t]*)from[ \t]+(?P<parent>[A-Za-z_][\w.]*)[ \t]+import[ \t]+"
    r"(?P<names>\([^)]*\)|[^\n#(]+?)(?P<trail>[ \t]*(?:#[^\n]*)?)$",
    re.MULTILINE,
)
PLAIN_IMPORT = re.compile(
    r"^(?P<indent>[ \t]*)import[ \t]+(?P<modules>[A-Za-z_][\w., \t]*?)(?P<trail>[ \t]*(?:#[^\n]*)?)$",
    re.MULTILINE,
)


def rewrite_from_imports(text: str, table: dict[str, str]) -> str:
    """`from bot import commands, logs` → `from bot.domain import commands` + `from bot.infra import logs`;
    `from bot.commands import parse` → `from bot.domain.commands import parse`."""

    def replace(match: re.Match[str]) -> str:
        parent = match.group("parent")
        moved_parent = renamed(parent, table)
        if moved_parent is not None:
            return match.group(0).replace(f"from {parent} ", f"from {moved_parent} ", 1)
        raw = match.group("names").strip()
        parenthesised = raw.startswith("(")
        entries = [e.strip() for e in raw.strip("()").replace("\n", " ").split(",") if e.strip()]
        groups: dict[str, list[str]] = {}
        changed = False
        for entry in entries:
            name, _, alias = (part.strip() for part in entry.partition(" as "))
            new = renamed(f"{parent}.{name}", table)
            if new is None:
                groups.setdefault(parent, []).append(entry)
                continue
            changed = True
            new_parent, _, new_name = new.rpartition(".")
            alias = alias or (name if new_name != name else "")
            groups.setdefault(new_parent, []).append(f"{new_name} as {alias}" if alias else new_name)
        if not changed:
            return match.group(0)
        indent, trail = match.group("indent"), match.group("trail")
        lines = []
        for package, names in groups.items():
            line = f"{indent}from {package} import {', '.join(names)}"
            if parenthesised and len(line) > 110:
                body = "".join(f"{indent}    {n},\n" for n in names)
                line = f"{indent}from {package} import (\n{body}{indent})"
            lines.append(line)
        lines[0] += trail
        return "\n".join(lines)

    return FROM_IMPORT.sub(replace, text)


def plainly_imported(text: str, table: dict[str, str]) -> set[str]:
    """Old modules the file imports as `import bot.runtime` (no alias): its code then says `bot.runtime.X`."""
    found = set()
    for match in PLAIN_IMPORT.finditer(text):
        for module in match.group("modules").split(","):
            name = module.strip()
            if " as " not in name and renamed(name, table) is not None:
                found.add(name)
    return found


def rewrite_plain_imports(text: str, table: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        modules = []
        for module in match.group("modules").split(","):
            name, _, alias = (part.strip() for part in module.partition(" as "))
            new = renamed(name, table) or name
            modules.append(f"{new} as {alias}" if alias else new)
        return f"{match.group('indent')}import {', '.join(modules)}{match.group('trail')}"

    return PLAIN_IMPORT.sub(replace, text)


def dotted_pattern(olds: list[str]) -> re.Pattern[str]:
    olds = sorted(olds, key=len, reverse=True)
    return re.compile(r"(?<![\w.])(" + "|".join(re.escape(o) for o in olds) + r")(?![\w])")


def path_table(root: Path, table: dict[str, str]) -> dict[str, str]:
    """File paths as prose and configs write them: `bot/commands.py`, `tests/fakes/`, `tests/fakes`."""
    paths: dict[str, str] = {}
    for old, new in MOVES:
        paths[old.replace(".", "/") + ".py"] = new.replace(".", "/") + ".py"
    for old, new in FOLDER_MOVES:
        paths[old.replace(".", "/")] = new.replace(".", "/")
    for module in BECOME_PACKAGES:
        paths[module.replace(".", "/") + ".py"] = module.replace(".", "/") + "/"
    return paths


def path_pattern(paths: dict[str, str]) -> re.Pattern[str]:
    olds = sorted(paths, key=len, reverse=True)
    return re.compile(r"(?<![\w/.-])(" + "|".join(re.escape(o) for o in olds) + r")(?![\w-])")


class Rewriter:
    def __init__(self, root: Path) -> None:
        self.table = module_table(root)
        self.dotted = dotted_pattern(list(self.table))
        self.paths = path_table(root, self.table)
        self.path_re = path_pattern(self.paths)

    def prose(self, text: str) -> str:
        """Docs, configs, strings and comments: every dotted module name and every file path."""
        text = self.dotted.sub(lambda m: renamed(m.group(1), self.table) or m.group(1), text)
        text = self.path_re.sub(lambda m: self.paths[m.group(1)], text)
        return text.replace("bot/reminders//", "bot/reminders/")  # `bot/reminders.py/` → one slash

    def python(self, text: str) -> str:
        """Code: imports; dotted names only inside strings and comments (`bot.settings` in code is
        usually an attribute: `harness.bot.settings`), unless the file did `import bot.settings`."""
        in_code = plainly_imported(text, self.table)
        text = rewrite_plain_imports(rewrite_from_imports(text, self.table), self.table)
        code_re = dotted_pattern(sorted(in_code)) if in_code else None
        lines = text.splitlines(keepends=True)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        spans: list[tuple[int, int]] = []
        try:
            for token in tokenize.generate_tokens(io.StringIO(text).readline):
                if token.type in (tokenize.STRING, tokenize.COMMENT):
                    (srow, scol), (erow, ecol) = token.start, token.end
                    spans.append((starts[srow - 1] + scol, starts[erow - 1] + ecol))
        except (tokenize.TokenError, SyntaxError):
            return text
        out, position = [], 0
        for begin, end in spans:
            code = text[position:begin]
            out.append(code_re.sub(self._code_name, code) if code_re else code)
            out.append(self.prose(text[begin:end]))
            position = end
        tail = text[position:]
        out.append(code_re.sub(self._code_name, tail) if code_re else tail)
        return "".join(out)

    def _code_name(self, match: re.Match[str]) -> str:
        return renamed(match.group(1), self.table) or match.group(1)

    def file(self, path: Path, text: str) -> str:
        return self.python(text) if path.suffix == ".py" else self.prose(text)


def text_files(root: Path) -> list[Path]:
    me = Path(__file__).resolve()
    files = []
    for name in git(root, "ls-files").splitlines():
        path = root / name
        if not path.is_file() or path.resolve() == me or (name.startswith(VENDORED) and path.suffix != ".md"):
            continue
        if path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            files.append(path)
    return files


def rewrite_files(root: Path, dry_run: bool) -> list[str]:
    rewriter = Rewriter(root)
    changed = []
    for path in text_files(root):
        try:
            before = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        after = rewriter.file(path, before)
        if after != before:
            changed.append(f"rewrite {rel(root, path)}")
            if not dry_run:
                path.write_text(after, encoding="utf-8")
    return changed


# --- config: the sandbox is test-support code inside the package --------------------------------------
RUFF_IGNORES_ANCHOR = '"tests/**" = ["S", "B", "ASYNC"]'
RUFF_IGNORES_SANDBOX = '"bot/sandbox/**" = ["S", "B", "ASYNC"]  # simulators: fixed test credentials, loose asserts'


def adjust_config(root: Path, dry_run: bool) -> list[str]:
    """Lint the sandbox like the tests it came from (its fixed test tokens are not secrets)."""
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    if RUFF_IGNORES_SANDBOX.split(" = ")[0] in text or RUFF_IGNORES_ANCHOR not in text:
        return []
    if not dry_run:
        text = text.replace(RUFF_IGNORES_ANCHOR, f"{RUFF_IGNORES_ANCHOR}\n{RUFF_IGNORES_SANDBOX}", 1)
        pyproject.write_text(text, encoding="utf-8")
    return ["rewrite pyproject.toml (ruff per-file-ignores for bot/sandbox)"]


# --- 3. import order ---------------------------------------------------------------------------------
def sort_imports(root: Path, changed: list[str]) -> None:
    ruff = root / ".venv" / "bin" / "ruff"
    command = str(ruff) if ruff.is_file() else shutil.which("ruff")
    files = [line.removeprefix("rewrite ") for line in changed if line.endswith(".py")]
    if not files:
        return
    if command is None:
        print("warning: ruff not found: run `ruff check --select I --fix .` to sort the rewritten imports",
              file=sys.stderr)
        return
    arguments = [command, "check", "--quiet", "--select", "I", "--fix", "--exit-zero", *files]
    subprocess.run(arguments, cwd=root, check=True)  # noqa: S603


# --- 4. what the table does not place ----------------------------------------------------------------
def unplaced(root: Path) -> list[str]:
    staying = {"__init__.py", "__main__.py"}
    return sorted(rel(root, p) for p in (root / "bot").glob("*.py") if p.name not in staying)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a run would change something")
    options = parser.parse_args(argv)
    root = Path(git(Path(__file__).resolve().parent, "rev-parse", "--show-toplevel").strip())
    if options.check:
        pending = move_files(root, dry_run=True)
        pending += rewrite_files(root, dry_run=True) if not pending else ["rewrite references (after the moves)"]
        pending += adjust_config(root, dry_run=True)
    else:
        pending = move_files(root, dry_run=False) + rewrite_files(root, dry_run=False)
        pending += adjust_config(root, dry_run=False)
        sort_imports(root, pending)
    for line in pending:
        print(line)
    for path in unplaced(root):
        print(f"warning: {path} is in no layer: add it to MOVES in scripts/relayout.py and run again",
              file=sys.stderr)
    if not pending:
        print("relayout: nothing to do")
    return 1 if options.check and pending else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
