"""End-to-end benchmark script: `python bench/bench_e2e.py [primflow bench options]`.

Same as `primflow bench` (see primflow/commands/bench.py); writes docs/bench/e2e.json,
e2e.md and PNG plots, and prints one result line. `--ablations all` (or a list of names)
adds the ablation table; `--natural-length` turns off the fixed-length answers.
"""

from __future__ import annotations

import sys

from primflow.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
