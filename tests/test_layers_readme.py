"""docs/layers.md documents every param_str key of every layer, in that layer's table."""

import re

import pytest
from conftest import REPO


@pytest.mark.parametrize("name", ["CheckFiniteLayer", "GradientClipLayer", "InputSanitizerLayer"])
def test_every_key_is_in_the_layers_table(caffe, name):
    from caffe_nanlayers import layers

    readme = (REPO / "docs" / "layers.md").read_text()
    section = re.search(rf"^## {name}\b.*?(?=^## )", readme, re.S | re.M)
    assert section, f"docs/layers.md has no '## {name}' section"
    documented = set(re.findall(r"^\| `(\w+)` \|", section.group(0), re.M))
    assert documented == set(getattr(layers, name).SCHEMA)
