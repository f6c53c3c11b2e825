"""Apps: what an executable runs besides the bare model. One module per app (edge/apps/<module>.py defines
APP), one line in MODULES; the app's device side is its package under edge/runtime (App.runtime_packages).

Modules here import only the standard library and light parts of edge when loaded: `edge doctor` reads every
app's declarations before the virtual environment exists. Heavy imports go inside `configure`."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

MODULES = ("voice_commands",)  # the registry: edge/apps/<module>.py defines APP


@dataclass(frozen=True)
class BuildOption:
    """A flag an app adds to `edge build`; its value reaches `configure` as options[dest]."""

    flag: str
    dest: str
    help: str
    type: Callable = str
    metavar: str | None = None


@dataclass(frozen=True)
class App:
    name: str  # `edge build --app NAME`, and the manifest's app name
    description: str
    synopsis: str  # what a Debian package of such an executable is, in a few words
    module: str  # edge/runtime/<module>.py's main(argv, manifest, name) runs the executable
    runtime_packages: tuple[str, ...]  # subpackages of edge/runtime staged into the executable
    pip: tuple[str, ...]  # extra pins for the build environment
    debs: tuple[str, ...]  # extra Debian packages for prefix-based (emulated) build environments
    hidden: tuple[str, ...]  # modules imported lazily, invisible to PyInstaller's analysis
    keep: tuple[str, ...]  # modules the bare runtime excludes but this app needs
    system_libraries: tuple[str, ...]  # libraries the board must provide: never bundled
    configure: Callable  # (onnx.ModelProto, options) -> the manifest's app settings
    default_threads: int | None = None  # inference threads unless `edge build --threads`; None: the target's
    options: tuple[BuildOption, ...] = ()  # flags this app adds to `edge build`
    # what a build on this machine bundles from the host: library (as ctypes.util.find_library names it) →
    # the Debian package providing it; `edge doctor` checks them
    host_libraries: dict[str, str] = field(default_factory=dict)
    # its part of the executable in the report's size table: (name, archive entries starting with these)
    component: tuple[str, tuple[str, ...]] | None = None
    # files the app adds to the executable: (settings, options, optimized model path, payload folder, say) ->
    # (the settings, amended; the build report's "app" additions or None)
    stage: Callable | None = None


@functools.cache
def registered() -> dict[str, App]:
    """Every app by name (MODULES, then whatever `register` added)."""
    found = (importlib.import_module(f"{__name__}.{m}").APP for m in MODULES)
    return {a.name: a for a in found}


def register(app: App) -> None:
    """An app from outside this package (a plugin, a test): known to `edge build` from now on."""
    registered()[app.name] = app
