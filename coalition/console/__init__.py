"""The web console at ``/console``: a small static front end over the same HTTP API.

The console is plain HTML, CSS and JavaScript modules in ``static/`` (no build
step, no CDN, no framework). It logs in with an API key that it keeps only in
the browser's ``sessionStorage`` and sends as ``Authorization: Bearer`` on
every ``fetch``; documents are fetched the same way and saved from a Blob, so
a key never appears in a URL. Every figure it shows comes from the
``/api/v1`` endpoints, i.e. from the same use cases as any other client: the
console formats figures, it never computes them.

Besides the static files, the console has one endpoint, ``/console/whoami``,
telling the page which role its key has so it can hide what the role may not
do; the API enforces the roles all the same (SPEC §4).
"""

from pathlib import Path

from flask import Blueprint, jsonify, redirect, request, send_from_directory

from coalition import api, auth
from coalition.api import authentication

STATIC = Path(__file__).parent / "static"

#: Everything comes from this origin; no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

blp = Blueprint("console", __name__, url_prefix="/console")


@blp.after_request
def _secure(response):
    response.headers.update(SECURITY_HEADERS)
    if request.path.endswith("/whoami"):
        response.headers["Cache-Control"] = "no-store"
    return response


@blp.get("")
def _slash():
    return redirect(request.path + "/", code=308)


@blp.get("/")
def index():
    """The single page; its routes live in the URL's fragment (``#/periods`` …)."""
    response = send_from_directory(STATIC, "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@blp.get("/static/<path:filename>")
def static_file(filename):
    return send_from_directory(STATIC, filename, max_age=0)


@blp.get("/whoami")
def whoami():
    """The role and partner of the key in the Authorization header (401 without a valid key)."""
    try:
        who = authentication.authenticate(request.headers.get("Authorization"))
    except auth.Unauthenticated as error:
        return api.unauthenticated(error)
    return jsonify(
        {
            "key_id": who.key_id,
            "role": who.role,
            "partner_id": who.partner_id,
            "own_partner": who.own_partner(),
        }
    )
