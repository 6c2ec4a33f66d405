"""Activation functions: one extra FLOP per output element, no MACs.

# NB: a transcendental (exp in sigmoid/SiLU/GELU/ELU, tanh, erf) costs many
# instructions in hardware; this counter, like most, charges every
# activation one FLOP per output element. GLU is charged 2 (sigmoid and
# multiply) per output element.
"""

from __future__ import annotations

from flopaudit.reference.formulas._factories import per_listed_element, per_output_element
from flopaudit.reference.registry import Category

ACTIVATION_NAMES: tuple[str, ...] = (
    "relu", "relu_", "relu6", "gelu", "gelu_", "silu", "silu_", "sigmoid", "sigmoid_", "tanh", "tanh_",
    "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "hardtanh", "hardtanh_", "leaky_relu",
    "leaky_relu_", "elu", "elu_", "celu", "celu_", "selu", "selu_", "softplus", "mish", "mish_",
    "threshold", "threshold_", "_prelu_kernel", "prelu", "log_sigmoid_forward", "rrelu_with_noise",
    "rrelu_with_noise_", "softshrink", "hardshrink", "logit",
)

activation = per_output_element(
    Category.ACTIVATION, 1, *ACTIVATION_NAMES,
    name="activation",
    doc="Activation: 1 FLOP per output element (in-place variants included), 0 MACs.",
)

glu = per_output_element(
    Category.ACTIVATION, 2, "glu",
    name="glu",
    doc="GLU ``a * sigmoid(b)``: 2 FLOPs (sigmoid, multiply) per output element.",
)

foreach_activation = per_listed_element(
    Category.ACTIVATION, 1, "_foreach_sigmoid", "_foreach_sigmoid_", "_foreach_tanh", "_foreach_tanh_",
    name="foreach_activation",
    doc="``_foreach_sigmoid``/``_foreach_tanh`` over a list of tensors: 1 FLOP per element of each tensor "
    "of the list, 0 MACs.",
)
