"""Prefect tasks: thin, coarse wrappers over bifrost_core (one per batch, never per file).

Importing this package (flows import it first) points Prefect at a home inside
BIFROST_HOME when neither PREFECT_HOME nor PREFECT_API_URL is set, before Prefect is
imported: the embedded default then keeps its Prefect server's database there
instead of in ~/.prefect. With PREFECT_API_URL set, runs go to that server.
"""

import os


def _embedded_prefect_home() -> None:
    if os.environ.get("PREFECT_HOME") or os.environ.get("PREFECT_API_URL"):
        return
    from bifrost_core.config import load_settings

    home = load_settings().home / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)


_embedded_prefect_home()
