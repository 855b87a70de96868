"""The hub's version: a leaf module, so adapters can name it without importing the runtime."""

__version__ = "0.1.0"
