"""Benchmarks (`make bench`): each module measures a figure and its baseline in the same run."""
