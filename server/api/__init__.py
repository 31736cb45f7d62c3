"""The recorder's HTTP API (aiohttp): ``/api/v1`` plus ``/healthz``; see ``openapi.py``."""
