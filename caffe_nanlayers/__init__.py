"""Find, explain and contain non-finite values (NaN, ±Inf) in Caffe nets.

Importing the package never imports Caffe: the linter and the log doctor must
work on machines without pycaffe. Only ``caffe_nanlayers.layers`` and the
tools that run nets import ``caffe``.
"""

from caffe_nanlayers.errors import NonFiniteError, UserError

__version__ = "0.1.0"
__all__ = ["NonFiniteError", "UserError", "__version__"]
