"""Chapter 4: data management: database per service, event sourcing and CQRS, replication,
consistency you can check, two-phase commit against sagas.

``services`` (a SQLite file per service, the article's repository aliasing, API
composition against a CQRS read model), ``events`` (the order aggregate, projections,
crashes and upcasting), ``replication`` (change data capture, the article's
synchroniser, lag, read-your-writes), ``quorums`` (the replicated register and the
linearizability checker, stale-read probability), ``commit`` (two-phase commit shown
blocking, the article's 2PC, the same transaction as a saga), ``exercise`` (choose the
quorums), ``figures`` (plotly figures and widgets).
"""
