"""Runtime device queries through the Python module."""

import laer


def test_device_list_matches_description():
    description = laer.describe_devices()
    gpus = laer.gpus()
    if not gpus:
        assert "no GPU" in description
    for gpu in gpus:
        assert gpu.name in description
        assert gpu.memory_bytes > 0
