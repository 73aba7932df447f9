"""Headless Chromium for the report tests (Debian's `chromium` package)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render(html: Path, png: Path, width: int = 1280, height: int = 1800) -> str:
    """Screenshot `html` into `png`; returns the rendered DOM (after scripts and layout)."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("no chromium")
    with tempfile.TemporaryDirectory() as profile:
        common = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        subprocess.run([*common, f"--screenshot={png}", html.resolve().as_uri()], check=True, timeout=120,
                       capture_output=True)
        dom = subprocess.run([*common, "--dump-dom", html.resolve().as_uri()], check=True, timeout=120,
                             capture_output=True, text=True)
    return dom.stdout
