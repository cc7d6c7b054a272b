"""The subcommands of ``caffe-nan``, one module each, listed here once.

Each module declares a ``command.Command`` (its options and its run) and a
``main(argv, prog)``. The table names modules rather than importing them, so
that ``caffe-nan lint`` starts without numpy or Caffe.
"""

from __future__ import annotations

# name -> (module with main(argv, prog), one-line summary for caffe-nan --help)
SUBCOMMANDS = {
    "lint": ("caffe_nanlayers.commands.lint", "lint prototxt files for NaN-prone configurations"),
    "scan": ("caffe_nanlayers.commands.scan", "run every record of a dataset through the data layers"),
    "instrument": ("caffe_nanlayers.commands.instrument", "add a finite check after every layer"),
    "locate": ("caffe_nanlayers.commands.locate", "train until the first NaN and name its cause"),
    "doctor": ("caffe_nanlayers.commands.doctor", "read a Caffe training log and diagnose the NaN"),
    "watch": ("caffe_nanlayers.commands.watch", "run caffe train, stop at the first NaN, name the layer"),
}
