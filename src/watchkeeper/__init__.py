"""watchkeeper: a self-hosted observability platform.

The package root only names the version; everything else lives in the layered subpackages
described in docs/architecture.md (model <- store <- ingest <- api <- app <- cli).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("watchkeeper")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
