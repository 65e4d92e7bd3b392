"""ssgan: semi-supervised image classification with GANs (K+1 discriminator, feature matching)."""
__version__ = "0.1.0"
