"""The catalogue of known causes of NaN/Inf in Caffe training, each with its fix.

``locate`` (which watches a run) and ``doctor`` (which reads a log) observe
different things but must name causes the same way, with the same advice:
they both pick an entry from this one table. Each entry says what the cause
is, why it turns numbers into NaN/Inf, and what to change.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Cause:
    """One known way training turns to NaN, and what to do about it."""

    id: str
    title: str
    explanation: str
    fix: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


CATALOGUE: dict[str, Cause] = {
    c.id: c
    for c in (
        Cause(
            "lr_policy",
            "the learning-rate schedule itself is NaN/Inf",
            "The solver computed a non-finite learning rate, so the first update multiplies every "
            'weight\'s gradient by NaN/Inf. Typical: lr_policy "poly" without max_iter (0/0), '
            '"inv" or "exp" with a negative or missing gamma/power, "step" without stepsize.',
            "Give the lr_policy all its parameters (poly: max_iter and power; step: stepsize and gamma; "
            "multistep: stepvalue; inv: gamma and power); run lint-prototxt on the solver.",
        ),
        Cause(
            "gradient_explosion",
            "gradient explosion (learning rate too high for this net)",
            "Each update made the weights larger, so the loss and the gradients grew by orders of "
            "magnitude over the iterations until float32 overflowed to Inf and then NaN.",
            "Lower base_lr by at least 10x; or clip: clip_gradients in the solver, or a GradientClipLayer; "
            "with several losses, lower the loss_weight of the one that grows; add BatchNorm or a "
            "warm-up if the net is deep; if the weights start too wide (gaussian without std), fix the "
            "fillers too (lint-prototxt).",
        ),
        Cause(
            "update_overflow",
            "the weight update overflowed (lr × gradient, with momentum)",
            "The loss and every gradient were finite, yet weights were Inf/NaN after the update: the "
            "step lr × gradient (accumulated with momentum in the solver's history) went past float32's "
            "largest value, 3.4e38, or pushed a weight past it. It is a gradient explosion caught at its "
            "last step, in the update rather than in the net.",
            "Lower base_lr by at least 10x (and check its exponent: 1e3 where 1e-3 was meant); or clip: "
            "clip_gradients in the solver, or a GradientClipLayer; lower momentum if it is close to 1; "
            "keep weight_decay small and positive.",
        ),
        Cause(
            "bad_input",
            "bad input data (NaN/Inf or huge values in a batch)",
            "The loss was steady, then one batch made it NaN at once: a record of the dataset holds "
            "NaN/Inf (or values so large that the first layer overflows), or a label outside the range "
            "the loss expects.",
            "Run `caffe-nan scan` on the data layers to name the bad records; fix or drop them, or put "
            "an InputSanitizerLayer after the data layer.",
        ),
        Cause(
            "loss_layer",
            "a loss layer divides by zero or takes log(0)",
            "Log, MultinomialLogisticLoss and InfogainLoss take log(p) of their input and divide by p in "
            "backward: a probability of exactly 0 (a Softmax that saturated, or a hand-built "
            "probability) gives -log(0) = Inf and a gradient of 1/0. The two loss layers clamp p at "
            "1e-20, so fed raw scores (any score <= 0) they send back gradients of about 1e20 and the "
            "next updates overflow the weights.",
            "Use SoftmaxWithLoss instead of Softmax + MultinomialLogisticLoss (it is computed stably); "
            "put a Softmax before InfogainLoss; clamp probabilities away from 0; check that every "
            "label is in [0, num_classes).",
        ),
        Cause(
            "log0",
            "log(0) in a hand-written cross-entropy",
            "A custom or Python loss computes -log(p[label]) (and its gradient -1/p) without clamping p: "
            "a Softmax whose scores are about 88 apart underflows to exactly 0, so the loss is "
            "-log(0) = +Inf and the gradient -1/0 = -Inf.",
            "Compute the loss from the scores with log-sum-exp (SoftmaxWithLoss does), or clamp p to "
            "at least 1e-20 before the log and in the division of the backward pass.",
        ),
        Cause(
            "pooling_stride",
            "a Pooling layer whose stride is larger than its kernel",
            "With stride > kernel_size (or pad >= kernel_size), Caffe's AVE pooling makes windows that "
            "cover no input: it divides 0 by a pool size of 0 and outputs NaN even for clean input.",
            "Make stride <= kernel_size and pad < kernel_size; run lint-prototxt on the net.",
        ),
        Cause(
            "batchnorm",
            "BatchNorm with a tiny eps or a batch of constant values",
            "BatchNorm divides by sqrt(variance + eps): a batch of 1, a channel that is constant over the "
            "batch, or eps set to 0 gives a division by (almost) zero; a moving_average_fraction or "
            "use_global_stats mismatch between TRAIN and TEST gives garbage statistics.",
            "Keep eps at its default (1e-5) or larger; use batches larger than 1; in TRAIN leave "
            "use_global_stats unset; follow BatchNorm with a Scale layer (bias_term: true).",
        ),
        Cause(
            "sparsity",
            "a 0/0 on sparse activations",
            "A layer divides by a quantity that is zero on sparse activations (a ReLU output has many "
            "exact zeros): a normalisation by their sum or norm, a Power layer with a negative or "
            "fractional power (sqrt's gradient at 0 is computed as 0/0), a sparsity penalty with a "
            "target of 0.",
            "Add an epsilon (Power: a small shift so the base is never 0; normalisations: eps); check "
            "the layer's forward and backward on an all-zero input.",
        ),
        Cause(
            "float16",
            "float16 overflow",
            "In half precision the largest finite value is 65504: activations or losses that are fine in "
            "float32 overflow to Inf.",
            "Train in float32, or scale the loss (loss scaling) and keep BatchNorm and the loss in float32.",
        ),
        Cause(
            "fillers",
            "weights initialised badly (missing or too-wide fillers)",
            "A weight_filler that is missing (constant 0), or gaussian with a std far too large for the "
            "layer's fan-in, makes the first forward pass overflow or saturate.",
            'Set weight_filler { type: "xavier" } (or "msra" before ReLU) and bias_filler { type: '
            '"constant" } on every Convolution and InnerProduct; run lint-prototxt.',
        ),
        Cause(
            "initialization",
            "the net or its data is non-finite before any update",
            "The loss is already NaN/Inf at iteration 0 (or with a learning rate of 0): no update can be "
            "blamed, so the initial weights, the input, or a layer's own arithmetic are.",
            "Run `caffe-nan locate` to name the layer that produces it; `caffe-nan scan` for the data; "
            "lint-prototxt for fillers and layer settings; check --weights if you fine-tune.",
        ),
        Cause(
            "layer_arithmetic",
            "a layer's own arithmetic (custom or Python layer)",
            "A layer turned finite inputs into NaN/Inf by itself: typically a custom or Python layer "
            "that divides, takes a log or a sqrt, or exponentiates without guarding its domain.",
            "Guard the layer's arithmetic (eps in denominators, clamp before log/exp); test it on edge "
            "inputs; keep a CheckFiniteLayer after it while you fix it.",
        ),
    )
}


def cause(cause_id: str) -> Cause:
    return CATALOGUE[cause_id]


# Layer types whose output, when the first to go bad, points at one cause.
DATA_LAYER_TYPES = frozenset(
    {"Data", "ImageData", "HDF5Data", "DummyData", "MemoryData", "Input", "WindowData", "VideoData"}
)
LOG_LOSS_TYPES = frozenset({"Log", "MultinomialLogisticLoss", "InfogainLoss"})
SPARSE_DIVISION_TYPES = frozenset({"Power", "Normalize", "LRN", "MVN"})


def cause_for_layer_type(layer_type: str, has_bottoms: bool = True) -> str | None:
    """The catalogue id a producing layer's type points at, or None when the type says nothing."""
    if layer_type in DATA_LAYER_TYPES or (layer_type == "Python" and not has_bottoms):
        return "bad_input"
    if layer_type == "Pooling":
        return "pooling_stride"
    if layer_type == "BatchNorm":
        return "batchnorm"
    if layer_type in LOG_LOSS_TYPES or layer_type.endswith("Loss"):
        return "loss_layer"
    if layer_type in SPARSE_DIVISION_TYPES:
        return "sparsity"
    if layer_type == "Python":
        return "layer_arithmetic"
    return None
