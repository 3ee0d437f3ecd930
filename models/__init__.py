"""The shipped model files (installed as package data ``grappa_like.models``; see MODEL_CARD.md)."""
