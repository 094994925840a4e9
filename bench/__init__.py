"""Benchmarks of the settlement service against the database's own ceiling.

``python -m bench.run [--scale small|medium|large] [--database-url URL]``
starts (or uses) a PostgreSQL server, creates a fresh database, migrates it,
starts the service under gunicorn on 127.0.0.1, loads a generated coalition
and prints every figure of the scale issue beside a ceiling measured in the
same run on the same database:

========================  ==================================================
figure                    ceiling
========================  ==================================================
(a) single POSTs, HTTP    single-row INSERT loop, same concurrency (psycopg)
(b) batch ingest          COPY of the very rows the batches wrote
(c) closing a period      bare ``SELECT … GROUP BY issuer, redeemer``
(d) balance lookups       the service's balance statement, straight from psycopg
(e) statement PDFs        bare ReportLab canvas, same pages and font
(f) growth 1× → 10×       every figure above, measured again on 10× data
========================  ==================================================

(g) KPIs and (h) the transactions CSV are measured too, as references, and (a)
beside its floor (:mod:`bench.floor`); bench/README.md lists them all.

Modules: :mod:`bench.pg` (throwaway cluster, database), :mod:`bench.data`
(the coalition and the bulk loader), :mod:`bench.load` (load generators and
ceilings), :mod:`bench.cpu` (CPU by process tree), :mod:`bench.report` (the
table), :mod:`bench.run` (the command), :mod:`bench.profile` (cProfile of the
single-transaction path); :mod:`bench.first_lots` and :mod:`bench.console`
measure one thing each, in process (:mod:`bench.in_process`).
"""
