"""Serve this machine only, unless told otherwise.

The app has no authentication and is meant for one user: anyone who reaches its port can read any
file the server can (the "Local path" inputs on Data and Score), launch jobs that use this machine's
CPUs and GPUs, and delete workspace entries. So it refuses to serve (one page that says why and how to
allow it) when Streamlit's ``server.address`` is not a loopback address, unless ``DELT_ALLOW_REMOTE=1``.

Unset, ``server.address`` makes Streamlit listen on every interface (0.0.0.0, or the IPv6 wildcard
``::`` which takes IPv4 too), so unset counts as not loopback. The project's ``.streamlit/config.toml``
(read beside app.py whatever the working folder) and ``studio.sh`` set ``localhost``.
"""

from __future__ import annotations

import ipaddress
import os

import streamlit as st

from .safe import md

ALLOW_ENV = "DELT_ALLOW_REMOTE"


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only.

    Loopback: ``localhost`` (and ``*.localhost``), 127.0.0.0/8, ``::1``, and a Unix socket
    (``unix://...``). Anything else is not: unset or empty (every interface), ``0.0.0.0``, ``::``,
    another address, and any other host name (it may resolve to a public address).
    """
    if not address or not str(address).strip():
        return False
    value = str(address).strip()
    if value.startswith("unix://"):
        return True
    if value.lower() == "localhost" or value.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(value.strip("[]")).is_loopback
    except ValueError:
        return False


def remote_allowed() -> bool:
    return os.environ.get(ALLOW_ENV, "").strip() == "1"


def address() -> str | None:
    return st.get_option("server.address")


def may_serve() -> bool:
    """True when the app may serve: a loopback address, or ``DELT_ALLOW_REMOTE=1``."""
    return is_loopback(address()) or remote_allowed()


def refuse() -> None:
    """Show only the refusal page (no navigation, no other page) and stop the script."""
    page = st.Page(_refusal, title="Not serving", url_path="not-serving", icon=":material/block:", default=True)
    st.navigation([page], position="hidden").run()
    st.stop()


def _refusal() -> None:
    bound = address()
    where = f"address {bound}" if bound else "every network interface (server.address is not set)"
    st.title("DELT Studio is not serving this address")
    st.error(
        md(
            f"This server listens on {where}, which other machines can reach. DELT Studio refuses to "
            "serve there: it is a single-user tool with no authentication."
        )
    )
    st.markdown(
        "Anyone who can reach the port could:\n"
        "- read any file this server can read, through the **Local path** inputs (Data and Score);\n"
        "- launch scoring and training jobs on this machine's CPUs and GPUs, and cancel yours;\n"
        "- delete entries of the workspace."
    )
    st.markdown("**To use it on this machine only** (the default), start it with one of:")
    st.code("./studio.sh app\nstreamlit run app.py --server.address localhost", language="bash")
    st.markdown(
        "**To serve it to the network anyway** (a private network you trust, or behind a proxy that "
        f"authenticates), set `{ALLOW_ENV}=1` in the server's environment:"
    )
    st.code(f"{ALLOW_ENV}=1 streamlit run app.py --server.address 0.0.0.0", language="bash")
