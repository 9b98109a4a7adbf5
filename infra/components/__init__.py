"""One ComponentResource per resource group; `infra/__main__.py` assembles them."""
