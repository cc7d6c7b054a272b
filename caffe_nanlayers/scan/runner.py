"""The child-process half of the scan: build the scan net in real Caffe and run it forward.

Runs under ``isolate.run_isolated`` so that a Caffe CHECK on a broken record
ends this process, not the user's command. It sends progress back as
``("progress", forwards_done, records_done, new_findings)`` messages, at most a few times
a second and whenever a bad record turns up, so the parent can draw its
progress bar and still has every finding made before an abort.
"""

from __future__ import annotations

import time

from caffe_nanlayers.caffe_net import import_caffe, phase_of, prototxt_file
from caffe_nanlayers.isolate import UserPythonLayers
from caffe_nanlayers.proto_io import caffe_pb2, parse_text
from caffe_nanlayers.scan.scan_net import SCAN_LAYER_NAME

PROGRESS_INTERVAL_S = 0.2


def scan_layer_of(net):
    names = list(net._layer_names)
    return net.layers[names.index(SCAN_LAYER_NAME)]


def run_scan_net(report, net_text: str, phase: str, forwards: int) -> list[int]:
    """Run ``forwards`` forward passes of the scan net; return the records scanned per source.

    Stops earlier once every source has given all its records (``forwards`` is an upper bound
    when a Python layer, whose batch size only its blob tells, has a record count). The
    findings travel in the progress messages.
    """
    caffe = import_caffe()
    # The user's Python data layers: an import that fails or an error they raise is one line naming them.
    with UserPythonLayers(parse_text(net_text, caffe_pb2().NetParameter(), "the scan net").layer):
        with prototxt_file(net_text) as path:
            net = caffe.Net(path, phase_of(phase))
        scanner = scan_layer_of(net)
        wanted = [source["records"] for source in scanner.sources]
        sent = 0
        last_report = time.monotonic()
        for done in range(1, forwards + 1):
            net.forward()
            finished = None not in wanted and all(n >= w for n, w in zip(scanner.scanned, wanted))
            now = time.monotonic()
            if (
                done in (1, forwards)
                or finished
                or len(scanner.findings) > sent
                or now - last_report >= PROGRESS_INTERVAL_S
            ):
                report(("progress", done, sum(scanner.scanned), scanner.findings[sent:]))
                sent = len(scanner.findings)
                last_report = now
            if finished:
                break
    return list(scanner.scanned)
