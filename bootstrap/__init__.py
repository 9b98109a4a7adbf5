"""The bootstrap Pulumi program (GitHub OIDC provider and deploy roles); see `program.py`."""
