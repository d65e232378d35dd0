"""Helpers for testing minigrad itself: the fakegpu backend (fakegpu.py)."""
