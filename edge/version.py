"""edgepack's version, from its installed distribution's metadata: recorded in every report, manifest and
package."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgepack")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
