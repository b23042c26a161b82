"""The Python API and the one interface under it for where a model runs (backends)."""
