"""Test environment: no network, caches and config in a temporary directory.

The variables are set at import time because `datasets` and `huggingface_hub` read them when
they are first imported, and conftest is imported before any test module.
"""
import os
import shutil
import tempfile

_SESSION_DIR = tempfile.mkdtemp(prefix="bptt-tests-")

os.environ.update({
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_UPDATE_DOWNLOAD_COUNTS": "0",
    "HF_HOME": os.path.join(_SESSION_DIR, "huggingface"),
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": os.path.join(_SESSION_DIR, "matplotlib"),
})


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
