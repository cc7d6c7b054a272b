"""The dummy-loss input scan: every record of a net's datasets through its data layers, the bad ones named.

``caffe-nan scan train_val.prototxt`` (see ``cli``) or ``scan(path)`` here.
The parts, in the order a scan uses them: ``scan_net`` (the user's data
layers made deterministic, plus the dummy loss), ``label_ranges`` (which
tops are class labels, and their range), ``sources`` with ``databases`` and
``hdf5_lists`` (size, names and read-only views of the datasets),
``runner`` and ``scan_layer`` (the real Caffe pass, in a child process),
``report`` and ``progress`` (what the user sees).
"""

from caffe_nanlayers.scan.scanner import scan

__all__ = ["scan"]
