"""Latent-space tools (filled in below)."""
TOOLS = {}


def expand(names):
    return names
