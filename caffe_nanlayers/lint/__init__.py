"""lint-prototxt: find NaN-prone Caffe configurations in prototxt files, before training.

The pieces, in the order a file goes through them: ``tokenizer`` and
``parser`` (text format with a line and column for every field), ``schema``
(caffe.proto checks, when pycaffe is importable), ``net`` and ``shapes``
(layers, phases and blob sizes as Caffe computes them), ``rules`` (one module
per finding code), ``linter`` (files, solvers and their nets) and ``formatters``;
the command line is ``caffe_nanlayers.commands.lint``.

    from caffe_nanlayers.lint import lint_paths, lint_text
    report = lint_text('base_lr: 0.01 lr_policy: "poly" power: 1')
    [f.code for f in report.findings]   # ['NAN203', 'NAN202']
"""

from caffe_nanlayers.lint.linter import Options, Report, lint_paths, lint_text

__all__ = ["Options", "Report", "lint_paths", "lint_text"]
