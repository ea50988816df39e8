"""``python -m tests.chaos``: the fault campaign (``make chaos``); see tests/chaos/campaign.py."""

import sys

from tests.chaos.campaign import main

sys.exit(main(sys.argv[1:]))
