"""From "loss = nan" to a cause: instrument a net, locate the first bad layer, read a training log.

``instrument`` adds finite checks to a prototxt; ``locate`` trains step by
step and replays the failing iteration through an instrumented net;
``doctor`` reads a ``caffe train`` log. ``locate`` and ``doctor`` name their
verdict from one catalogue of causes (``causes``), so the same problem gets
the same name and the same fix whichever tool found it.
"""
