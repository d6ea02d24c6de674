"""advgraph: generative adversarial nets declared in YAML, compiled to a typed graph."""

__version__ = "0.1.0"
