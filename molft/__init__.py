"""molft: molecular property prediction with pretrained graph neural networks."""

__version__ = "0.1.0"
