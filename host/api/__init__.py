"""HTTP layer: the FastAPI application factory and its limits.

`create_app(plugins, store)` builds the API that `plugbox serve` runs and that a platform may
mount into its own application.
"""

from ._app import create_app as create_app
from ._state import ApiLimits as ApiLimits

__all__ = ["ApiLimits", "create_app"]
