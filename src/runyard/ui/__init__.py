"""The web UI: pages served by ``runyard serve`` at ``/``, beside the REST API.

Server-rendered (Jinja2) from the app facade, with small hand-written ES modules for live
updates (the API's event stream) and actions (the API). Every asset is in this package.
"""
