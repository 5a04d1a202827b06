import os
import sys
import unittest

import alpha


class ToolTests(unittest.TestCase):
    def test_alpha_version(self):
        self.assertEqual(alpha.__version__, "1.1")

    def test_isolated(self):
        self.assertTrue(sys.flags.isolated)

    def test_sqlite(self):
        import sqlite3  # through a vendored libsqlite3

        self.assertTrue(sqlite3.sqlite_version)

    def test_ssl(self):
        import ssl  # through vendored libssl/libcrypto

        self.assertTrue(ssl.OPENSSL_VERSION)

    def test_paths_are_the_runtimes(self):
        self.assertTrue(all(p.startswith(sys.prefix) or "overlay" in p for p in sys.path))

    @unittest.skipIf(os.environ.get("TOOL_SKIP") is None, "skipped unless TOOL_SKIP is set")
    def test_sometimes_skipped(self):
        pass
