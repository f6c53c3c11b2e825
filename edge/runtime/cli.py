"""The executable's entry: read the manifest, then hand the command line to what it names — the app's
module (`app.module`), or the bare model's command line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from . import bundled, model_cli, stop
from .manifest import ManifestError

EXIT_RUNTIME = model_cli.EXIT_RUNTIME


def main(argv: list[str] | None = None) -> int:
    name = Path(sys.argv[0]).name
    stop.install()
    try:
        try:
            manifest = bundled.manifest()
        except (OSError, ValueError, ManifestError) as e:
            print(f"{name}: error: this executable's manifest is unreadable ({e}); rebuild it", file=sys.stderr)
            return EXIT_RUNTIME
        # an app's module is imported by name: only executables built with that app carry it
        entry = importlib.import_module(f"{__package__}.{manifest.app.module}") if manifest.app else model_cli
        return entry.main(argv, manifest, name)
    except KeyboardInterrupt:  # before any work started: nothing to summarise
        return 0
    except MemoryError:
        print(f"{name}: error: out of memory (the input is larger than this machine's memory allows)",
              file=sys.stderr)
        return EXIT_RUNTIME
