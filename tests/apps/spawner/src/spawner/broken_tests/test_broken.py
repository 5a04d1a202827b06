"""A test module that cannot be imported: its collection fails, on every host."""

import spawner_has_no_such_module  # noqa: F401


def test_never_collected():
    pass
