"""A net as the rules see it: layers in order, with Caffe's type names and phases.

The tree from the parser knows fields, not layers. This module gives the rules
one view of both formats: the current ``layer { type: "Convolution" }`` and
the V1 ``layers { type: CONVOLUTION }`` (upgraded to the current names as
Caffe's ``UpgradeV1LayerType`` does), net inputs declared with ``input:`` /
``input_dim`` / ``input_shape``, and the include/exclude rules that decide in
which phase (and stage) each layer exists.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from caffe_nanlayers.lint.model import Node
from caffe_nanlayers.net_state import StateRule, meets_rule

# Caffe's UpgradeV1LayerType (src/caffe/util/upgrade_proto.cpp)
V1_LAYER_TYPES = {
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution",
    "DATA": "Data",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

PHASES = ("TRAIN", "TEST")


@dataclass(frozen=True)
class NetState:
    """Caffe's NetState: the phase, level and stages a net is instantiated with."""

    phase: str
    stages: frozenset = frozenset()
    level: int = 0

    def describe(self) -> str:
        stages = "".join(f", stage {s!r}" for s in sorted(self.stages))
        return f"{self.phase}{stages}"


def _meets_rule(state: NetState, rule: Node) -> bool:
    """Caffe's Net::StateMeetsRule for a rule of the parse tree (``net_state.meets_rule``)."""
    fields = StateRule(
        phase=rule.scalar("phase"),
        min_level=rule.number("min_level"),
        max_level=rule.number("max_level"),
        stage=tuple(s.value for s in rule.all("stage")),
        not_stage=tuple(s.value for s in rule.all("not_stage")),
    )
    return meets_rule(fields, state.phase, state.level, state.stages)


@dataclass
class Layer:
    """One layer, either format."""

    node: Node
    index: int
    name: str
    type: str
    v1: bool
    bottoms: list[Node]
    tops: list[Node]
    # include and exclude rules, read once: FilterNet runs for every state the rules check
    include: list[Node] = field(default_factory=list)
    exclude: list[Node] = field(default_factory=list)

    @property
    def line(self) -> int:
        return self.node.line

    def param(self, name: str) -> Node | None:
        """A ``*_param`` message of the layer, e.g. ``param('pooling_param')``."""
        node = self.node.get(name)
        return node if node is not None and node.is_message else None

    def field_node(self, name: str) -> Node:
        """The node to point at for this layer's field ``name`` (the layer when absent)."""
        return self.node.get(name) or self.node

    def included_in(self, state: NetState) -> bool:
        """Caffe's Net::FilterNet decision for this layer.

        Only ``include`` and ``exclude`` count: a layer-level ``phase:`` field restricts nothing (Net::Init
        keeps the layer in every phase and only fills the field in when it is unset).
        """
        if self.include:
            return any(_meets_rule(state, r) for r in self.include)
        return not self.exclude or not any(_meets_rule(state, r) for r in self.exclude)

    @property
    def loss_weights(self) -> list[float]:
        return [n.value for n in self.node.all("loss_weight") if isinstance(n.value, (int, float))]

    @property
    def is_loss(self) -> bool:
        """A loss layer by type, or any layer given a non-zero loss_weight."""
        return self.type.endswith("Loss") or any(w != 0 for w in self.loss_weights)


@dataclass
class NetInput:
    """A blob declared with ``input:`` at net level, and its shape when given."""

    node: Node
    name: str
    shape: tuple[int, ...] | None


@dataclass
class Net:
    """A net definition: its node (a file's root or a solver's ``net_param``)."""

    node: Node
    layers: list[Layer]
    inputs: list[NetInput] = field(default_factory=list)

    @functools.cached_property
    def is_training_net(self) -> bool:
        """Has a loss: it is trained (deploy nets, with no loss, get weights from a .caffemodel)."""
        return any(layer.is_loss for layer in self.layers)

    def states(self) -> list[NetState]:
        """The states worth checking: each phase with no stage, with each stage the net names, and with
        each stage combination an include rule asks for (never combinations nobody asks for)."""
        return list(self._states)

    @functools.cached_property
    def _states(self) -> list[NetState]:
        combos: set[frozenset] = {frozenset()}
        for layer in self.layers:
            for rule in layer.include + layer.exclude:
                named = [s.value for s in rule.all("stage") + rule.all("not_stage")]
                named = [s for s in named if isinstance(s, str)]
                combos.update(frozenset([s]) for s in named)
                wanted = frozenset(s.value for s in rule.all("stage") if isinstance(s.value, str))
                if wanted:
                    combos.add(wanted)
        ordered = sorted(combos, key=lambda c: (len(c), sorted(c)))
        return [NetState(phase, combo) for phase in PHASES for combo in ordered]

    def layers_in(self, state: NetState) -> list[Layer]:
        return [layer for layer in self.layers if layer.included_in(state)]

    def layer_states(self, states: list[NetState] | None = None) -> dict[int, list[NetState]]:
        """For each layer index, the states (of ``states``, default all) in which it exists."""
        states = self.states() if states is None else states
        return {layer.index: [s for s in states if layer.included_in(s)] for layer in self.layers}


def _last_scalar(fields: dict[str, list[Node]], name: str, default=None):
    """``Node.scalar`` over a node's ``by_name()``: the last ``name`` when it is a scalar."""
    found = fields.get(name)
    if not found or found[-1].children is not None:
        return default
    return found[-1].value


def _layer_from_node(node: Node, index: int) -> Layer:
    fields = node.by_name()  # one look-up table for all of the layer's fields, not one call per field
    get = fields.get
    v1 = node.name == "layers"
    type_name = str(_last_scalar(fields, "type", ""))
    if v1:
        type_name = V1_LAYER_TYPES.get(type_name, type_name)
    name = _last_scalar(fields, "name")
    return Layer(
        node,
        index,
        str(name) if name is not None else f"#{index + 1}",
        type_name,
        v1,
        [n for n in get("bottom", ()) if isinstance(n.value, str)],
        [n for n in get("top", ()) if isinstance(n.value, str)],
        list(get("include", ())),
        list(get("exclude", ())),
    )


def _inputs(node: Node) -> list[NetInput]:
    names = [n for n in node.all("input") if isinstance(n.value, str)]
    shapes = node.all("input_shape")
    dims = node.integers("input_dim")
    inputs = []
    for i, name_node in enumerate(names):
        shape = None
        if i < len(shapes):
            shape = tuple(shapes[i].integers("dim"))
        elif len(dims) >= 4 * (i + 1):
            shape = tuple(dims[4 * i : 4 * i + 4])
        inputs.append(NetInput(name_node, name_node.value, shape))
    return inputs


def build_net(node: Node) -> Net:
    """The net defined by ``node`` (a net file's root, or a ``net_param`` message)."""
    layer_nodes = [c for c in node.children or () if c.name in ("layer", "layers") and c.is_message]
    return Net(node, [_layer_from_node(n, i) for i, n in enumerate(layer_nodes)], _inputs(node))


WEIGHTED = {
    "Convolution": "convolution_param",
    "Deconvolution": "convolution_param",
    "InnerProduct": "inner_product_param",
}


def weighted_layers(net: Net):
    """(layer, its *_param node or None) for Convolution, Deconvolution and InnerProduct."""
    for layer in net.layers:
        name = WEIGHTED.get(layer.type)
        if name:
            yield layer, layer.param(name)


def frozen(layer: Layer, index: int) -> bool:
    """Whether learnable blob ``index`` has lr_mult 0 (current format) or blobs_lr 0 (V1)."""
    params = layer.node.all("param")
    if index < len(params):
        lr = params[index].number("lr_mult")
        return lr == 0
    blobs_lr = layer.node.all("blobs_lr")
    return index < len(blobs_lr) and blobs_lr[index].value == 0


def has_weight_filler(param: Node | None) -> bool:
    """Whether a Convolution/InnerProduct ``*_param`` states its ``weight_filler``."""
    return param is not None and param.get("weight_filler") is not None
