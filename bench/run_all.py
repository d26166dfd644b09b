"""Run every benchmark in bench/ in turn (`make bench`), each with its default settings.

    .venv/bin/python bench/run_all.py                      # every bench/*_bench.py
    .venv/bin/python bench/run_all.py --only ack bulk_cancel
    .venv/bin/python bench/run_all.py --skip ledger --log bench/last-run.txt

Each script prints its own tables; this prints which command ran, how long it took and whether it
exited cleanly, and ends with a summary. bench/README.md holds the latest figures and the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=None, help="bench names, e.g. ack throughput")
    parser.add_argument("--skip", nargs="+", default=[], help="bench names to leave out")
    parser.add_argument("--log", type=Path, default=None, help="also write everything printed to this file")
    options = parser.parse_args()

    scripts = sorted(HERE.glob("*_bench.py"))
    names = {s.name.removesuffix("_bench.py"): s for s in scripts}
    wanted = [n for n in names if (options.only is None or n in options.only) and n not in options.skip]
    unknown = set(options.only or []) - set(names)
    if unknown:
        print(f"no such bench: {', '.join(sorted(unknown))} (there are: {', '.join(names)})", file=sys.stderr)
        return 2

    log = options.log.open("w", encoding="utf-8") if options.log else None

    def say(text: str) -> None:
        print(text, flush=True)
        if log is not None:
            log.write(text + "\n")
            log.flush()

    results: list[tuple[str, int, float]] = []
    for name in wanted:
        command = [sys.executable, str(names[name])]
        say(f"\n=== {name}: {' '.join(['.venv/bin/python', f'bench/{names[name].name}'])}")
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                cwd=HERE.parent)
        assert proc.stdout is not None
        for line in proc.stdout:
            say(line.rstrip("\n"))
        code = proc.wait()
        elapsed = time.monotonic() - started
        results.append((name, code, elapsed))
        say(f"=== {name}: {'ok' if code == 0 else f'exit {code}'} in {elapsed:,.0f} s")

    say("\nsummary:")
    for name, code, elapsed in results:
        say(f"  {name:<14} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {elapsed:>7,.0f} s")
    if log is not None:
        log.close()
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
