"""Testing layer, the host's face for tests: an in-memory runner for supervisor logic tests.

`async with FakeRunner({"name": FakePlugin(...)}) as runner:` and `PluginHost(config,
runner=runner)` run crash, restart, breaker, deadline and shutdown-ladder logic without a
process; each fake plugin speaks the real wire protocol over in-memory streams.
"""

from ._fake import FakePlugin as FakePlugin
from ._fake import FakeProcess as FakeProcess
from ._fake import FakeRunner as FakeRunner

__all__ = ["FakePlugin", "FakeProcess", "FakeRunner"]
