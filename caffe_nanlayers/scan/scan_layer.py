"""The dummy loss of the scan net: a Python layer that measures every record of every batch.

It sits on all the tops of the data layers, so Caffe produces each batch
exactly as it would for training, and it records, for each record whose
values are not all finite (or whose class label is out of range), the
record's position in its source's single pass. Positions past the end of a
pass (Caffe wraps around to the first records to fill the last batch) are
ignored, so no record is counted twice. Its own output is a loss of 0.

``param_str`` is the JSON written by ``scan_net.build_scan_net``:

    {"sources": [{"batch_size": 64, "records": 1000}],
     "bottoms": [{"source": 0, "top": "data", "label": null},
                 {"source": 0, "top": "label", "label": {"num_classes": 10, "ignore_label": null}}]}

Findings are plain dicts in ``layer.findings`` and the records seen per
source are in ``layer.scanned`` (the runner reads both through
``net.layers``), so they cross process boundaries as they are.
"""

from __future__ import annotations

import json

from caffe_nanlayers.caffe_net import import_caffe
from caffe_nanlayers.finite import all_finite
from caffe_nanlayers.scan.record_checks import bad_label_rows, label_finding, nonfinite_finding

caffe = import_caffe()


def record_positions(forward_index: int, batch_size: int, records: int | None) -> int:
    """How many leading positions of this batch hold records of the first pass (the rest wrap around)."""
    start = forward_index * batch_size
    if records is None:
        return batch_size
    return max(0, min(batch_size, records - start))


class ScanLayer(caffe.Layer):
    """Dummy loss that records non-finite values and out-of-range labels, record by record."""

    def setup(self, bottom, top):
        config = json.loads(self.param_str)
        self.sources = config["sources"]
        self.bottoms = config["bottoms"]
        if len(self.bottoms) != len(bottom):
            raise ValueError(f"scan layer configured for {len(self.bottoms)} bottoms, got {len(bottom)}")
        self.forwards = 0
        self.scanned = [0] * len(self.sources)
        self.findings: list[dict] = []

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        forward_index = self.forwards
        self.forwards += 1
        valid, first_record = {}, {}
        for i in range(len(bottom)):
            index = self.bottoms[i]["source"]
            if index not in valid:
                source = self.sources[index]
                # Python data layers choose their batch size at run time: the blob tells.
                batch_size = source["batch_size"] or bottom[i].data.shape[0]
                valid[index] = record_positions(forward_index, batch_size, source["records"])
                first_record[index] = forward_index * batch_size
                self.scanned[index] += valid[index]
        for i in range(len(bottom)):
            spec = self.bottoms[i]
            index = spec["source"]
            if valid[index] == 0:
                continue
            batch = bottom[i].data[: valid[index]]
            if not all_finite(batch):
                for position in range(valid[index]):
                    finding = nonfinite_finding(batch[position])
                    if finding is not None:
                        self._add(finding, index, forward_index, first_record[index], position, spec["top"])
            label = spec["label"]
            if label is not None:
                for position in bad_label_rows(batch, label["num_classes"], label["ignore_label"]):
                    finding = label_finding(batch[position], label)
                    self._add(finding, index, forward_index, first_record[index], int(position), spec["top"])
        top[0].data[...] = 0.0

    def _add(
        self, finding: dict, source: int, batch: int, first_record: int, position: int, top: str
    ) -> None:
        finding.update(source=source, record=first_record + position, batch=batch, position=position, top=top)
        self.findings.append(finding)

    def backward(self, top, propagate_down, bottom):
        pass
