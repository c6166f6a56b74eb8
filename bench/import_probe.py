"""Time one import in a fresh interpreter: ``python -I bench/import_probe.py MODULE [NAME ...]``.

Run as a script under ``-I``, so nothing but the standard library is loaded before the timed import
(``sys`` and ``time`` are built in). Prints one JSON line: milliseconds, modules the import loaded, and
peak RSS. Exit status 3 when the module cannot be imported or lacks one of the NAMEs (timing a stub
that does not yet have the API would flatter it).
"""

import sys
import time

EXIT_UNAVAILABLE = 3


def _unavailable(reason: str) -> int:
    import json

    print(json.dumps({"unavailable": reason}))
    return EXIT_UNAVAILABLE


def main() -> int:
    """Import ``sys.argv[1]`` once, timed, then report."""
    module, names = sys.argv[1], sys.argv[2:]
    before = len(sys.modules)
    start = time.perf_counter()
    try:
        imported = __import__(module)
    except ImportError as exc:
        return _unavailable(f"import {module}: {type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - start
    loaded = len(sys.modules) - before
    missing = [name for name in names if not hasattr(imported, name)]
    if missing:
        return _unavailable(f"{module} has no {', '.join(missing)}")

    import json
    import resource

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"import_ms": elapsed * 1e3, "modules": loaded, "peak_rss_mb": peak_kb / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
