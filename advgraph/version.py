"""The package's version, apart from advgraph/__init__.py (which reaches the API, layer 7), so
that any layer can record it."""

__version__ = "0.1.0"
