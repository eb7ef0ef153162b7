"""Vision path placeholder replaced below."""

from __future__ import annotations


def vision_status() -> dict:
    return {"configured": False}
