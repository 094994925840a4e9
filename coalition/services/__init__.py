"""Use cases: most run inside one database transaction given to them as ``session``.

HTTP views, CLI commands and scheduler jobs call those through
:meth:`coalition.db.Database.run`, which owns commit, rollback and retries.
The few that must commit as they go, or read as they go, are given the
:class:`~coalition.db.Database` instead and run one unit of work per step:
a batch's chunks (:func:`batches.post_many`, :func:`imports.post_file`), the
expiry job's batches (:func:`expiry.expire_all`), the auto-close
(:func:`settlement.auto_close`), the keeping of periods' KPI counts
(:func:`kpi_counts.keep_counts`), and an export's pages
(:func:`exports.movement_pages`), so that a file of millions of rows holds no
snapshot open.
"""

from coalition.services import changes  # noqa: F401  its flush hook records who changed what
