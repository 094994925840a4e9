"""Use cases: each runs inside one database transaction given to it as ``session``.

HTTP views, CLI commands and scheduler jobs all call these functions through
:meth:`coalition.db.Database.run`, which owns commit, rollback and retries.
"""
