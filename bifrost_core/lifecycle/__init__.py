"""The lifecycle of stored content: per-project archive policies, the move of versions'
blobs from the hot tier to an archive tier, and their restore (see moves.py and restores.py)."""
