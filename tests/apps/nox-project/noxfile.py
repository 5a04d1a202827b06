"""A project's noxfile that gets its runtime sessions from isolate (tests/test_isolate_nox.py)."""

import isolate.nox

# install=None: run the isolate that runs nox (the test's); a project installs
# isolate-runtime into each session instead (the default).
isolate.nox.register(runtime="tiny", hosts=["local-3.12", "local-3.13"], install=None)
