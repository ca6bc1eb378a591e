"""Run the benchmarks and print a table (and write JSON with --json)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from benchmarks import figures
from benchmarks.harness import Harness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; finishes within 3 minutes")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE as JSON")
    parser.add_argument("--only", metavar="NAME", action="append", choices=list(figures.ALL),
                        help="run only these figures (repeatable)")
    args = parser.parse_args(argv)

    url = os.environ.get("STROUTE_BENCH_REDIS_URL")
    started = time.monotonic()
    with Harness(url, quick=args.quick) as harness:
        print(f"redis {harness.redis_version} at {harness.where}; python {platform.python_version()} "
              f"on {platform.machine()}, {os.cpu_count()} cores; {'quick' if args.quick else 'full'} run",
              file=sys.stderr)
        results: dict[str, object] = {}
        rows: list[tuple[str, str, str, str]] = []
        for name, run in figures.ALL.items():
            if args.only and name not in args.only:
                continue
            print(f"  {name} ...", file=sys.stderr, flush=True)
            harness.reset()
            figure = run(harness)
            results.update(figure.values)
            rows.extend(figure.rows)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["quick"] = args.quick

    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"{'figure':<{width}}  {'value':>14}  {'goal':>8}  baseline / detail")
    for key, value, goal, detail in rows:
        print(f"{key:<{width}}  {value:>14}  {goal:>8}  {detail}")
    print(f"total {results['seconds']} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
