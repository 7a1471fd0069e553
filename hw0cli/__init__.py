"""hw0: fast, reproducible, inspectable experiments for the deep-learning homework."""

__version__ = "0.1.0"
