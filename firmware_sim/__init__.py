"""Simulated instruments (noise, gas, dust, vibration) behind the edge driver interface.

Deterministic with a seed: the same seed and start time give the same samples, whether run in
real time, faster than real time, or as an instant backfill.
"""
