"""Turning prompts into evidence: sampled answers, their meaning clusters, semantic entropy,
judge ratings, and the resumable pipeline that stores them."""
