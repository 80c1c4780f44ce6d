"""The web UI: pages served by ``runyard serve`` at ``/``, beside the REST API.

Server-rendered (Jinja2) from the app facade, with small hand-written ES modules for live
updates (the API's event stream) and actions (the API). Every asset is in this package.

Modules: ``site`` (mounting, templates, who is looking), ``pages`` (the routes of jobs,
runs and schedules), ``datapages`` (the routes of the Data section: repos, commits, files,
data pipelines, data jobs), ``views`` and ``dataviews`` (what a page computes from records),
``dag`` (a DAG's layout). A new section is a router of its own included by
``site.install``, templates extending ``base.html``, and its link in ``base.html``'s nav.
"""
