"""runyard's REST API (FastAPI), served by ``runyard serve``."""
