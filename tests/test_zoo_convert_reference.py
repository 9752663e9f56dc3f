"""The zoo's reference models (MLPerf Tiny v1.0, keras.applications MobileNets) through both
generators, float32 and int8 (see test_zoo_convert.py)."""
from __future__ import annotations

import pytest

from test_zoo_convert import HAVE_ARM, REFERENCE, check_zoo_model


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("name", REFERENCE)
def test_reference_model_float32_and_int8_on_qemu_m7(name, tmp_path):
    check_zoo_model(name, tmp_path)
