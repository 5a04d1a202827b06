"""Bring hosts up on this machine for tests: Debian root filesystems, local interpreters."""
