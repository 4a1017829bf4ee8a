"""harness: compare multilayer-perceptron architectures, trained by a NumPy core."""

__version__ = "0.1.0"
