"""Ready-made Python layers to drop into any ``train_val.prototxt``.

    python_param { module: "caffe_nanlayers.layers"  layer: "CheckFiniteLayer"
                   param_str: "{'label': 'after fc2', 'mode': 'raise'}" }

This is the one part of the package that imports Caffe (it subclasses
``caffe.Layer``); it never changes Caffe's mode or logging, since it is
imported from inside ``caffe train`` too. Messages go to the logger
``caffe_nanlayers.layers``.
"""

from caffe_nanlayers.layers.base import NanLayer
from caffe_nanlayers.layers.check_finite import CheckFiniteLayer, checkFiniteLayer
from caffe_nanlayers.layers.gradient_clip import GradientClipLayer
from caffe_nanlayers.layers.input_sanitizer import InputSanitizerLayer, SanitizeCounts
from caffe_nanlayers.layers.naming import bind_names

__all__ = [
    "CheckFiniteLayer",
    "GradientClipLayer",
    "InputSanitizerLayer",
    "NanLayer",
    "SanitizeCounts",
    "bind_names",
    "checkFiniteLayer",
]
