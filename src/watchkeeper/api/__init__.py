"""The HTTP layer: routers per area, auth and tenancy, error mapping. No business logic.

A router parses the request, calls one function of a lower package, and maps the result and
errors to HTTP. FastAPI and Starlette are imported here (and in app.py) and nowhere else.
"""

from watchkeeper.api.app import create_api
from watchkeeper.api.context import ApiContext
from watchkeeper.api.instruments import Instruments

__all__ = ["ApiContext", "Instruments", "create_api"]
