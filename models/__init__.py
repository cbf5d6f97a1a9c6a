"""Shipped model packages: one folder per model (see docs/model-package.md)."""
