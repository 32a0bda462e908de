"""The templates service's tornado application: its routes, the API's and the pages'.

`api` answers JSON to hub tokens, `pages` serves the browser through the hub's OAuth;
both decide who may do what through `policy` and share a `context.Context`.
"""

from __future__ import annotations

from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado import web

from ..api import NotFoundHandler
from . import api, pages
from .context import Context

SLUG = r"([a-z0-9][a-z0-9-]{0,62})"


def routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """The service's route table (the authorization matrix in tests/security reads it too)."""
    base = prefix.rstrip("/")
    return [
        (base + "/?", pages.ListPage),
        (base + "/new", pages.EditPage),
        (base + "/edit/" + SLUG, pages.EditPage),
        (base + "/toggle/" + SLUG, pages.TogglePage),
        (base + "/history/" + SLUG, pages.HistoryPage),
        (base + "/rollback/" + SLUG, pages.RollbackPage),
        (base + "/oauth_callback", HubOAuthCallbackHandler),
        (base + "/api/?", api.ApiRootHandler),
        (base + "/api/templates", api.TemplatesHandler),
        (base + "/api/templates/" + SLUG, api.TemplateHandler),
        (base + "/api/templates/" + SLUG + "/history", api.HistoryHandler),
        (base + "/api/templates/" + SLUG + "/rollback", api.RollbackHandler),
        (base + r"/.*", NotFoundHandler),
    ]


def make_app(ctx: Context, prefix: str, cookie_secret: bytes) -> web.Application:
    return web.Application(
        routes(prefix),
        ctx=ctx,
        hub_auth=ctx.hub_auth,
        prefix=prefix,
        cookie_secret=cookie_secret,
        xsrf_cookies=True,  # the pages' forms; the API is token-only and skips the check
        xsrf_cookie_kwargs={"path": prefix},  # not "/": the hub's own _xsrf cookie must stay alone
        default_handler_class=NotFoundHandler,
    )
