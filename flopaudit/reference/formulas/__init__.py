"""Built-in formulas, grouped by operator family; importing registers them all."""

from flopaudit.reference.formulas import (  # noqa: F401 - imported for registration
    activation,
    attention,
    backward,
    conv,
    data_movement,
    elementwise,
    embedding,
    interpolation,
    linalg,
    loss,
    matmul,
    norm,
    pool,
    quantized,
    reduction,
    rnn,
)

__all__ = [
    "activation",
    "attention",
    "backward",
    "conv",
    "data_movement",
    "elementwise",
    "embedding",
    "interpolation",
    "linalg",
    "loss",
    "matmul",
    "norm",
    "pool",
    "quantized",
    "reduction",
    "rnn",
]
