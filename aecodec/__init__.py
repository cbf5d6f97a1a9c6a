"""aecodec: a learned image codec (hyperprior autoencoder, ONNX transforms, exact C++ entropy coding)."""

__version__ = "0.1.0"
