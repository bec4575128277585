"""The public contract, ``docs/openapi.json``: the merged document as the gateway serves it at
``/openapi.json``, built here from the apps themselves (no servers, no databases).

``make openapi`` writes it (``python -m tests.contract.document``), and refuses to when the new
document would break a client of the committed one (tests/contract/compat.py): a breaking change is
a new version, beside the old one. tests/contract/test_document.py fails while the live document
differs from the committed one.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway.openapi import merge, own_document
from tests.apps import make_app
from tests.contract.compat import breaking_changes
from tests.support.databases import sqlite_urls

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
SERVICES = ("catalog", "orders", "notify")  # in the gateway's order (GatewaySettings.upstream_urls)


def public_document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        urls = sqlite_urls(Path(folder))
        gateway = make_app("gateway", urls)
        services = {name: make_app(name, urls).openapi() for name in SERVICES}
    return merge(own_document(gateway), services)


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    doc = public_document()
    if COMMITTED.exists():
        breaking = breaking_changes(json.loads(COMMITTED.read_text()), doc)
        if breaking:
            print("docs/openapi.json not written: these changes would break clients of the committed contract.\n"
                  "Keep them compatible, or make them a new version (new paths beside /api/v1):", file=sys.stderr)
            print("\n".join(f"  - {line}" for line in breaking), file=sys.stderr)
            return 1
    COMMITTED.write_text(dumps(doc))
    print(f"wrote {COMMITTED.relative_to(COMMITTED.parents[1])}: {len(doc['paths'])} paths, "
          f"{len(doc.get('webhooks', {}))} webhooks, {len(doc['components']['schemas'])} schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
