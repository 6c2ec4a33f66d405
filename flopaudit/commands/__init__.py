"""One module per CLI sub-command: ``register(subparsers)`` sets ``handler``."""
