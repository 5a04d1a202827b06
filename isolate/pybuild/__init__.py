"""CPython from pinned sources for an old glibc: the ``source:`` interpreter provider."""
