"""An API-server double for distrodebug's Kubernetes tests; see README.md in this folder."""

from __future__ import annotations

from .double import ADMIN, ApiServerDouble
from .http import RequestRecord

__all__ = ["ADMIN", "ApiServerDouble", "RequestRecord"]
