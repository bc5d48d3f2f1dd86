"""The office's page over a round (`xlsx-assess serve`): needs the `web` extra (`pip install .[web]`).

Nothing here is imported by the other commands: `serve` imports it when it runs.
"""

from __future__ import annotations

import secrets
import socket

LOCAL = "127.0.0.1"


def url_of(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def free_port(host: str = LOCAL) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port(host: str, port: int) -> None:
    """OSError if `port` on `host` cannot be listened on (taken by another program, or not this machine's)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))


def token_for(host: str) -> str | None:
    """No token on 127.0.0.1 (only this machine can reach it); a fresh secret for any other host."""
    return None if host == LOCAL else secrets.token_urlsafe(24)


def serve(rnd, host: str = LOCAL, port: int = 8765, open_browser: bool = True, announce=print) -> None:
    """Serve the round's page until interrupted (Ctrl+C)."""
    import threading
    import webbrowser

    import uvicorn

    from .app import create_app

    check_port(host, port)
    token = token_for(host)
    app = create_app(rnd, token=token, port=None if token else port)
    url = url_of(host, port, token)
    announce(url)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")
