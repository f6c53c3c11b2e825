"""Packages for the boards: a Debian package of an executable, its systemd service, a local apt repository."""
