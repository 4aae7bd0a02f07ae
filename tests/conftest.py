"""Shared test set-up: registration must precede collection of ``timm.list_models('sct_*')``."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # tests never reach the network

import sct_timm  # noqa: E402,F401  (registers the sct_* models)

pytest_plugins = ['hub_helpers']  # the staged weights every tests/test_hub_*.py file shares
