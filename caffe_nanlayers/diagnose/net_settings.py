"""The settings of the printed net that make NaN by themselves, found by lint-prototxt.

``caffe train`` prints the training net at start-up ("Initializing net from
parameters:"). A plain log names no layer, but the net it printed can still
hold a setting that makes NaN whatever the data: an AVE Pooling window that
covers no input, a BatchNorm with eps 0, gaussian fillers without std, an
InfogainLoss fed raw scores. The linter's rules already know them; the doctor
asks only for those, on the net as Caffe read it.
"""

from __future__ import annotations

import dataclasses
import functools

from caffe_nanlayers.lint import Options, lint_text

# lint-prototxt code -> the catalogue's cause of the NaN that setting makes.
CAUSE_OF_CODE = {
    "NAN101": "pooling_stride",
    "NAN104": "fillers",
    "NAN106": "loss_layer",
    "NAN107": "batchnorm",
    "NAN108": "float16",
}


@dataclasses.dataclass(frozen=True)
class NetSetting:
    """The first finding of one code in the printed net, and how many there are."""

    code: str
    cause_id: str
    line: int  # in the printed net
    message: str
    count: int


@functools.lru_cache(maxsize=4)  # a log followed as it grows is diagnosed again with the same net
def nan_settings(net_text: str | None) -> tuple[NetSetting, ...]:
    """One entry a code, in the order of CAUSE_OF_CODE; () for no net or one the linter cannot read."""
    if not net_text:
        return ()
    report = lint_text(net_text, "<printed net>", Options(select=list(CAUSE_OF_CODE), use_schema=False))
    found: dict[str, list] = {}
    for finding in report.findings:
        if finding.code in CAUSE_OF_CODE:
            found.setdefault(finding.code, []).append(finding)
    return tuple(
        NetSetting(code, CAUSE_OF_CODE[code], found[code][0].line, found[code][0].message, len(found[code]))
        for code in CAUSE_OF_CODE
        if code in found
    )
