"""Coalition's business rules as plain Python.

Nothing in this package imports Flask or SQLAlchemy: the ledger, the rates and
the settlement arithmetic can be read and tested on their own. The service
layer loads values from the database, calls these functions and stores what
they decide.
"""
