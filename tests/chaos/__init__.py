"""The randomized fault campaign (``make chaos``): see docs/chaos.md."""
