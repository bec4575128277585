"""Which upstream a public path goes to, after making sure no spelling of a path can reach /internal."""

from __future__ import annotations

from urllib.parse import quote, unquote

_MAX_DECODE_ROUNDS = 4


class RejectedPath(Exception):
    """The path cannot be routed (it is ambiguous, or reaches a private area). Answered as 404."""


def canonical_path(raw_path: bytes | str) -> str:
    """Decode percent-escapes until stable and refuse anything a server might read differently.

    Refused: dot segments, empty segments (``//``), backslashes, encoded slashes, control characters,
    and any segment that is ``internal`` in any case. The result is what is forwarded, re-quoted.
    """
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    if "\\" in path or "%5c" in path.lower() or "%2f" in path.lower():
        raise RejectedPath(path)
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(path, errors="strict")
        if decoded == path:
            break
        path = decoded
        if "\\" in path or "%5c" in path.lower() or "%2f" in path.lower():
            raise RejectedPath(path)
    else:
        raise RejectedPath(path)
    if not path.startswith("/") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise RejectedPath(path)
    segments = path.split("/")[1:]
    for i, seg in enumerate(segments):
        if seg in (".", "..") or (seg == "" and i != len(segments) - 1):
            raise RejectedPath(path)
        if seg.strip().lower().rstrip(".") == "internal" or seg.lower().startswith("internal;"):
            raise RejectedPath(path)
    return quote(path, safe="/:@!$&'()*+,;=-._~")


class RouteTable:
    """Public prefix → service name, longest prefix first, matched on whole segments."""

    def __init__(self, routes: dict[str, str]) -> None:
        self._routes = sorted(((p.rstrip("/"), s) for p, s in routes.items()), key=lambda r: -len(r[0]))

    def match(self, path: str) -> str | None:
        found = self.match_prefix(path)
        return found[1] if found else None

    def match_prefix(self, path: str) -> tuple[str, str] | None:
        """(prefix, service) of the longest prefix that ``path`` falls under, or None."""
        for prefix, service in self._routes:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, service
        return None

    @property
    def prefixes(self) -> list[tuple[str, str]]:
        return list(self._routes)
