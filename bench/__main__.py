"""``python -m bench [name] [options]``: run one benchmark, or every one without a name."""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    "validation": "bench.validation",
}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks: " + ", ".join(sorted(BENCHES)))
        return 0
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in BENCHES:
            print(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHES))}")
            return 2
        names = [name]
    else:
        names, rest = sorted(BENCHES), argv
    status = 0
    for name in names:
        module = importlib.import_module(BENCHES[name])
        status = module.main(rest) or status
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
