"""Several recorders as one site on a NATS cluster (docs/design/site.md)."""
