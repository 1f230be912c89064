"""ASEAN Single Window message gateway."""

__version__ = "0.1.0"
