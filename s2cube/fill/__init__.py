"""Holes: donors from other periods, then inpainting (see docs/fill.md)."""
