"""audiogpt2: environmental-sound classification with a CNN over MFCCs feeding GPT-2."""

__version__ = "0.1.0"

__all__ = ["__version__"]
