"""Field bugs (issue: bugs from the field) reproduced at the HTTP API; filled in by its area's work."""
from __future__ import annotations
