"""Training side of aecodec: the only subpackage that imports torch (install the `train` extra)."""
