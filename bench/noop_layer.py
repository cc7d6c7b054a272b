"""A Python layer that does nothing: the price of Caffe calling Python at all.

The training bench puts one wherever ``caffe-nan instrument`` puts a check,
so the instrumented net's overhead splits into what any Python layer costs
(Caffe's calls into the interpreter for reshape, forward and backward) and
what the check itself adds.
"""

import caffe


class NoopLayer(caffe.Layer):
    """In place, no parameters: every method returns at once."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass
