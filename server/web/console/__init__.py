"""The web console at /console/: what marketers and operators see of their sequences (overview,
a sequence's funnel, arms and uplift, email previews, a user, live events) and what they may
do (validate, backtest, save and reload sequences; suppress, unsuppress and erase a user).

Server-rendered (pages.py, templates/), charts drawn on the server as SVG (charts.py), the one
script only for the Live page's stream (static/console.js). Behind a login (auth.py), off
unless `[console] enabled`; served on the HTTP listener or on `[console] listen`.
"""

from server.web.console.figures import ConsoleSources
from server.web.console.live import LiveFeed
from server.web.console.pages import Console, console_routes

__all__ = ["Console", "ConsoleSources", "LiveFeed", "console_routes"]
