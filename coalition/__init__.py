"""Coalition: the settlement service of a coalition loyalty programme.

:func:`create_app` wires configuration, the database and the HTTP API; the
CLI (:mod:`coalition.cli`) and the scheduler (:mod:`coalition.jobs`) build
the same app, so every entrypoint calls the same use cases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coalition import config as config_module

if TYPE_CHECKING:  # imported when an app is built: the domain and reports need neither
    from flask import Flask

    from coalition.db import Database

# A batch's 1,000 items (SPEC §6) at their fields' longest, written in characters
# JSON escapes as two \u escapes, make about 5.6 MB: every valid body fits, with room
# for indentation, and a larger one is refused (413) before it is read.
MAX_BODY_BYTES = 16 * 1024 * 1024


def create_app(config: dict | None = None) -> Flask:
    """Build the Flask app; ``config`` overrides the environment (tests pass a URL)."""
    from flask import Flask

    from coalition.db import Database

    app = Flask(__name__)
    app.config.update(config_module.from_environment())
    app.config.update(config or {})
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    # A path is matched as written: "/api//v1/periods" is a JSON 404, not an HTML
    # redirect (which a client's POST would follow, or not, as its library decides).
    app.url_map.merge_slashes = False
    app.extensions["coalition"] = {"db": Database(app.config["DATABASE_URL"])}

    from coalition import api
    from coalition.api.converters import AsciiInteger, PathSegment

    app.url_map.converters["default"] = PathSegment
    app.url_map.converters["int"] = AsciiInteger
    api.init_app(app)

    from coalition import console, health

    app.register_blueprint(console.blp)
    app.register_blueprint(health.blp)
    return app


def database_of(app: Flask) -> Database:
    return app.extensions["coalition"]["db"]
