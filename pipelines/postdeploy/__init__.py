"""The post-deploy suite: smoke checks and the retrieval gate, for any environment.

The same code runs against the local platform (`make smoke`), an ephemeral PR stack,
staging (the gate that guards promotion) and prod (smoke only). Only the target
changes: it comes from a Pulumi stack's outputs, from `.data/platform.json` written
by `ragctl dev`, or from environment variables (see `config.py`).
"""
