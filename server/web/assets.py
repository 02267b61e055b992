"""The loader and everything the page loads after it, served by the server itself (no CDN).

How this works: `scripts/build_web` writes `build/web/`: the minified loader `pw.min.js`, and
`assets/<id>/` holding Pyodide, our two wheels, the trimmed pyodide-lock.json and boot.mjs,
where <id> is a hash of their contents, listed with sizes and hashes in `manifest.json`.
- `/pw.js` is the loader with its `__PW_ASSETS__` placeholder replaced by `/pw/a/<id>/`; its URL
  never changes, so it is cached briefly (5 minutes) and a new build reaches pages quickly.
- `/pw/a/<id>/<file>` never changes content under one URL, so it is cached for a year
  (`immutable`). Only files in the manifest are served; anything else is a 404.
Text assets (the JavaScript, the lock file, the WebAssembly) are gzipped once, on first request,
when the browser accepts gzip; the zip and wheel files are compressed already.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["LOADER_PATH", "StaticAssets", "asset_routes"]

log = logging.getLogger("pulsewire.web")
LOADER_PATH = "/pw.js"
ASSETS_PREFIX = "/pw/a/"
_PLACEHOLDER = b"__PW_ASSETS__"
_LONG = "public, max-age=31536000, immutable"
_SHORT = "public, max-age=300"
_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
          ".json": "application/json", ".zip": "application/zip", ".whl": "application/zip"}
_COMPRESSIBLE = {".mjs", ".js", ".wasm", ".json"}


@dataclass
class _File:
    data: bytes
    media_type: str
    etag: str
    gzipped: bytes | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StaticAssets:
    def __init__(self, build_dir: Path) -> None:
        self.assets_id = ""
        self.loader: _File | None = None
        self._files: dict[str, _File] = {}
        manifest_path = build_dir / "manifest.json"
        if not manifest_path.is_file():
            log.warning("no web assets in %s: run scripts/build_web; /pw.js answers 503",
                        build_dir)
            return
        manifest = json.loads(manifest_path.read_text())
        self.assets_id = manifest["assets_id"]
        folder = build_dir / "assets" / self.assets_id
        for name, facts in manifest["files"].items():
            suffix = Path(name).suffix
            self._files[name] = _File((folder / name).read_bytes(),
                                      _TYPES.get(suffix, "application/octet-stream"),
                                      f'"{facts["sha256"][:32]}"')
        loader_path = build_dir / "pw.min.js"
        if not loader_path.is_file():
            log.warning("no loader at %s: run scripts/build_web; /pw.js answers 503", loader_path)
            return
        loader = loader_path.read_bytes().replace(
            _PLACEHOLDER, f"{ASSETS_PREFIX}{self.assets_id}/".encode())
        self.loader = _File(loader, "text/javascript", f'"{self.assets_id}"')

    @property
    def prefix(self) -> str:
        return f"{ASSETS_PREFIX}{self.assets_id}/"

    async def serve_loader(self, request: Request) -> Response:
        if self.loader is None:
            return Response("the collector assets are not built (scripts/build_web)", 503)
        return await _respond(request, self.loader, ".js", _SHORT)

    async def serve_asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        found = self._files.get(name)
        if request.path_params["id"] != self.assets_id or found is None:
            return Response("not found", 404)
        return await _respond(request, found, Path(name).suffix, _LONG)


async def _respond(request: Request, found: _File, suffix: str, cache: str) -> Response:
    headers = {"cache-control": cache, "etag": found.etag,
               "cross-origin-resource-policy": "cross-origin", "vary": "Accept-Encoding",
               "access-control-allow-origin": "*"}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    body = found.data
    if suffix in _COMPRESSIBLE and "gzip" in request.headers.get("accept-encoding", ""):
        async with found.lock:
            if found.gzipped is None:
                found.gzipped = await asyncio.to_thread(gzip.compress, found.data, 6)
        body = found.gzipped
        headers["content-encoding"] = "gzip"
    return Response(body, media_type=found.media_type, headers=headers)


def asset_routes(assets: StaticAssets) -> list[Route]:
    return [Route(LOADER_PATH, assets.serve_loader, methods=["GET", "HEAD"]),
            Route(ASSETS_PREFIX + "{id}/{name}", assets.serve_asset, methods=["GET", "HEAD"])]
