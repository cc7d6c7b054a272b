"""Which labels a net can take: the class range of each data top that feeds a classification loss.

A label of 10 for a 10-way classifier, or a label of -1 or 2.5, does not
crash Caffe: SoftmaxWithLoss reads the probability at that index out of
bounds (or at a truncated one) and the loss becomes garbage, often NaN. The
valid range can be read from the net: the label blob is the second bottom of
a SoftmaxWithLoss (or another loss that takes a class index), and its first
bottom comes from an InnerProduct or Convolution whose ``num_output`` is the
number of classes. This module reads that off the layers of one phase.
"""

from __future__ import annotations

import dataclasses

# Layers whose second bottom is a class index into the channels of the first.
CLASS_INDEX_CONSUMERS = ("SoftmaxWithLoss", "MultinomialLogisticLoss", "InfogainLoss", "Accuracy")
# Layers between the classifier and the loss that keep the number of channels.
CHANNEL_PRESERVING = ("Softmax", "Sigmoid", "ReLU", "Dropout", "BatchNorm", "Scale", "Bias", "Power", "TanH")
CLASSIFIERS = ("InnerProduct", "Convolution", "Deconvolution")


@dataclasses.dataclass(frozen=True)
class LabelRange:
    """A data top read as class indices: integers in [0, num_classes), or ``ignore_label``."""

    top: str
    consumer: str  # "SoftmaxWithLoss 'loss'"
    num_classes: int | None  # None when the classifier could not be found
    classifier: str | None  # "InnerProduct 'ip2'"
    ignore_label: int | None

    def as_config(self) -> dict:
        return {"num_classes": self.num_classes, "ignore_label": self.ignore_label}

    def describe(self) -> str:
        if self.num_classes:
            return (
                f"read by {self.consumer} as a class index: an integer in [0, {self.num_classes}) "
                f"({self.num_classes} = num_output of {self.classifier})"
            )
        return f"read by {self.consumer} as a class index: an integer >= 0 (the classifier was not found)"


def _producer(layers, blob: str, before: int):
    """The last layer before index ``before`` that writes ``blob``, and its index."""
    for index in range(before - 1, -1, -1):
        if blob in layers[index].top:
            return layers[index], index
    return None, -1


def _classifier(layers, blob: str, before: int):
    """Follow ``blob`` back through channel-preserving layers to the layer that sets its channels."""
    while True:
        layer, index = _producer(layers, blob, before)
        if layer is None:
            return None
        if layer.type in CLASSIFIERS:
            return layer
        if layer.type not in CHANNEL_PRESERVING or not layer.bottom:
            return None
        blob, before = layer.bottom[0], index


def _num_output(layer) -> int | None:
    param = layer.inner_product_param if layer.type == "InnerProduct" else layer.convolution_param
    return int(param.num_output) or None


def label_ranges(layers, data_tops: set[str]) -> dict[str, LabelRange]:
    """For each top of ``data_tops`` read as a class index by a later layer, its valid range.

    When two consumers disagree (two heads on one label), the smaller range wins:
    a label must be valid for every layer that reads it.
    """
    found: dict[str, LabelRange] = {}
    for index, layer in enumerate(layers):
        if layer.type not in CLASS_INDEX_CONSUMERS or len(layer.bottom) < 2:
            continue
        label_blob = layer.bottom[1]
        if label_blob not in data_tops or _producer(layers, label_blob, index)[0] is None:
            continue
        classifier = _classifier(layers, layer.bottom[0], index)
        num_classes = _num_output(classifier) if classifier is not None else None
        ignore = layer.loss_param.ignore_label if layer.loss_param.HasField("ignore_label") else None
        if layer.type == "Accuracy" and layer.accuracy_param.HasField("ignore_label"):
            ignore = layer.accuracy_param.ignore_label
        candidate = LabelRange(
            top=label_blob,
            consumer=f"{layer.type} {layer.name!r}",
            num_classes=num_classes,
            classifier=f"{classifier.type} {classifier.name!r}" if num_classes else None,
            ignore_label=ignore,
        )
        previous = found.get(label_blob)
        if previous is None or _tighter(candidate, previous):
            found[label_blob] = candidate
    return found


def _tighter(candidate: LabelRange, previous: LabelRange) -> bool:
    if candidate.num_classes is None:
        return False
    return previous.num_classes is None or candidate.num_classes < previous.num_classes
