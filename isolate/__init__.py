"""isolate: pinned, relocatable Python application runtimes, proven on many hosts."""

__version__ = "0.1.0"
