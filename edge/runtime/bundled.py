"""Where the executable finds what was packed into it: the manifest and the model."""

from __future__ import annotations

import sys
from pathlib import Path

from .manifest import Manifest

DATA_DIR = "edgepack"  # folder name inside the bundle


def root() -> Path:
    # PyInstaller unpacks (onefile) or places (onedir) data under sys._MEIPASS
    return Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent)) / DATA_DIR


def manifest() -> Manifest:
    return Manifest.load(root() / "manifest.json")


def model_path(m: Manifest) -> Path:
    return root() / m.model.file
