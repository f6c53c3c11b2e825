"""Host side of `edge build`: build environments, PyInstaller, bundle inspection, verification."""
