#!/usr/bin/env python3
"""Name every bad record of a net's datasets: the same command as ``caffe-nan scan``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caffe_nanlayers.commands.scan import main

if __name__ == "__main__":
    sys.exit(main(prog="scan_inputs.py"))
