"""A stand-in for a black-box text classifier behind an API: it answers
probabilities over five news sections and nothing else (no features).

It was "trained" elsewhere: its keyword lists were written for news
headlines, not for the target task, so it knows only part of the task's
vocabulary and has a label it never needs (politics).
"""

from __future__ import annotations

import re

import numpy as np

SECTIONS = ("sport", "food", "technology", "climate", "politics")
KEYWORDS = {
    "sport": {"match", "team", "goal", "coach", "league", "season", "player", "won", "lost", "final", "cup"},
    "food": {"recipe", "soup", "garlic", "sauce", "pasta", "chef", "kitchen", "restaurant", "dessert", "baked"},
    "technology": {"laptop", "software", "server", "network", "password", "app", "code", "startup", "update"},
    "climate": {"rain", "storm", "snow", "wind", "forecast", "temperature", "heatwave", "flood", "drought"},
    "politics": {"election", "vote", "minister", "parliament", "policy", "party", "senate", "campaign"},
}
SHARPNESS = 1.5  # how much one keyword moves the answer (logit per keyword hit)


def predict_proba(texts: list[str]) -> np.ndarray:
    """texts (N strings) -> probabilities [N, 5] over SECTIONS."""
    counts = np.zeros((len(texts), len(SECTIONS)))
    for row, text in enumerate(texts):
        words = re.findall(r"[a-z]+", text.lower())
        for col, section in enumerate(SECTIONS):
            counts[row, col] = sum(word in KEYWORDS[section] for word in words)
    scores = np.exp(SHARPNESS * (counts - counts.max(axis=1, keepdims=True)))
    return scores / scores.sum(axis=1, keepdims=True)
