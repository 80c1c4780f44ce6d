"""Every command pays for what ``runyard.cli.main`` imports: only ``serve`` needs the API."""

import subprocess
import sys


def test_the_cli_does_not_import_the_api_server_until_serve_runs() -> None:
    probe = (
        "import sys, runyard.cli.main\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'runyard.api.app') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
