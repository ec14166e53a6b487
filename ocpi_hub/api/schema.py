"""The OpenAPI document of the internal API (docs/operations.md §6): served at `/api/v0/schema/openapi.json` with a
viewer at `/api/v0/schema` that needs no network (Litestar's viewers load their scripts from CDNs), both behind the
internal API's guard, and the Bearer scheme of `OCPI_HUB_ADMIN_TOKEN` declared."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Litestar, Request, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from ocpi_hub.api.internal.guard import admitted, internal_api_guard
from ocpi_hub.errors import seed_errors

PATH = "/api/v0/schema"
BEARER = "adminToken"
# What every guarded operation declares.
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]
_METHODS = ("get", "put", "post", "delete", "patch")
_NOT_INPUT = {"request", "state", "scope", "headers", "cookies"}


class OfflineViewer(OpenAPIRenderPlugin):
    """The operations as one HTML table: method, path, operationId, summary, and the statuses each answers."""

    def __init__(self) -> None:
        super().__init__(path="/", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        rows = []
        for path, item in openapi_schema.get("paths", {}).items():
            for method in _METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                statuses = ", ".join(sorted(operation.get("responses", {})))
                cells = (method.upper(), path, operation.get("operationId", ""), operation.get("summary", ""), statuses)
                rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
        info = openapi_schema.get("info", {})
        title = escape(f"{info.get('title', '')} {info.get('version', '')}")
        page = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            "<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{text-align:left;padding:.3em .7em;border-bottom:1px solid #ddd}th{background:#f4f4f6}</style>"
            f"</head><body><h1>{title}</h1>"
            f'<p>The whole document: <a href="{PATH}/openapi.json">{PATH}/openapi.json</a></p>'
            "<table><thead><tr><th>Method</th><th>Path</th><th>operationId</th><th>Summary</th><th>Statuses</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>"
        )
        return page.encode()


def openapi_config() -> OpenAPIConfig:
    """A new config per app: Litestar attaches the router it is given to one app."""
    return OpenAPIConfig(
        title="ocpi-hub internal API",
        version="0.1.0",
        path=PATH,
        openapi_router=Router(PATH, route_handlers=[], guards=[internal_api_guard], include_in_schema=False),
        render_plugins=[OfflineViewer(), JsonRenderPlugin()],
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="OCPI_HUB_ADMIN_TOKEN; while it is unset, only loopback clients are served",
                )
            }
        ),
    )


def document_guard(app: Litestar) -> None:
    """Every operation behind the guard says it needs the Bearer token and answers the guard's 401 and 403, and,
    when it takes input, 400: all with the seed's body (Litestar would describe its own validation body, which the
    boundary never sends). Litestar copies handlers into each app, so this touches only `app`'s."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            guarded = any(internal_api_guard in (layer.guards or ()) for layer in handler.ownership_layers)
            if not guarded and handler.resolve_before_request() is not admitted:
                continue
            inputs = set(handler.parsed_fn_signature.parameters) - set(handler.resolve_dependencies()) - _NOT_INPUT
            handler.responses = {**seed_errors(*((400,) if inputs else ()), 401, 403), **(handler.responses or {})}
            handler.security = SECURITY
