"""Who is asking: each /api/v1 request's key judged, and its role admitted, before its
view runs; the principal a view then reads. Keys are judged against this process's
catalog when it is current (:mod:`coalition.services.catalog`), so most requests read
nothing for it; a key revoked anywhere is refused from the next statement on.
"""

from flask import current_app, g, request

from coalition import auth, database_of
from coalition.api.parsing import refuse_a_query
from coalition.services import catalog
from coalition.services.changes import Actor, act_as, stop_acting


def principal() -> auth.Principal:
    return g.principal


def authenticate(authorization: str | None, generation: int | None = None) -> auth.Principal:
    """The principal of an Authorization header: from this process's catalog when it is
    current (at ``generation``, read by the view's own statement, or else known from
    one read outside any transaction), else read in a transaction."""
    database = database_of(current_app)
    current = catalog.if_current(database, generation)
    if current is not None:
        return auth.principal_in(current, authorization)
    return database.run_reading(auth.authenticate, authorization)


def reads_generation(view):
    """Declare that a view reads the catalog's generation with its own statement and
    then calls :func:`authenticate_at`: a lookup partners make before every
    redemption saves the read authentication would make first. Only a key this
    process's catalog holds (:func:`_held_here`) goes to the view unjudged, so a
    request without one, or with one never issued, reads nothing of the view's
    (a member's balance took longer to read the more lots it has, which told a
    caller without a key whom the coalition knows); the view answers nothing
    before :func:`authenticate_at` has accepted the key. Its roles are checked then
    too: for a view without a body, whose parsing could reveal the schema to a key
    outside them (see :meth:`coalition.api.Blueprint.roles`).
    """
    view.reads_generation = True
    return view


def authenticate_at(generation: int) -> None:
    """Authenticate the request of a :func:`reads_generation` view, whose statement
    read the catalog at ``generation``."""
    _admit(authenticate(request.headers.get("Authorization"), generation))


def _view_method():
    """The matched view's method, looked up as MethodView dispatches (HEAD runs GET)."""
    view_class = getattr(current_app.view_functions.get(request.endpoint), "view_class", None)
    method = getattr(view_class, request.method.lower(), None)
    if method is None and request.method == "HEAD":
        method = getattr(view_class, "get", None)
    return method


def _admit(who: auth.Principal) -> None:
    view = _view_method()
    who.require(*getattr(view, "roles", auth.ROLES))
    if hasattr(view, "unbound_only"):
        who.require_unbound(view.unbound_only)
    g.principal = who
    g.acting = act_as(Actor("api", who.key_id))
    if view is not None and not getattr(view, "reads_query", False):
        refuse_a_query()


def stop_acting_after(_error) -> None:
    """A thread serves one request after another: what it changes after this one is
    not this key's, but whoever's acted before (no one's, in a worker)."""
    if "acting" in g:
        stop_acting(g.pop("acting"))


def admit_request() -> None:
    """Every /api/v1 request's key, judged before its view runs (see :func:`reads_generation`)."""
    if not request.path.startswith("/api/v1/"):
        return
    authorization = request.headers.get("Authorization")
    if not getattr(_view_method(), "reads_generation", False):
        _admit(authenticate(authorization))
    elif not _held_here(authorization):
        authenticate(authorization)  # refused, or read into this process's catalog


def _held_here(authorization: str | None) -> bool:
    """Whether this process's catalog, current or not, holds the request's key: one
    revoked since is refused by :func:`authenticate_at`, after the view's statement."""
    held = catalog.held(database_of(current_app))
    return held is not None and auth.hash_key(auth.bearer_key(authorization)) in held.keys
