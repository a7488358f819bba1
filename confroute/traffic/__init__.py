"""Learning from the traffic confroute routes: the decision log, outcomes, shadow judging, the
table for retraining, the promotion gate and drift.

    log.py      DecisionLog, LogSettings: record decisions (never blocking), feedback, counts
    records.py  Entry (one routed request), decision_fields, the rows and their validation
    writer.py   the bounded queue and the batching writer thread
    store.py    SQLAlchemy engine for a URL (SQLite default, PostgreSQL), Alembic migrations
    schema.py   the decisions and outcomes tables
    shadow.py   ShadowJudge, ShadowSettings: other models' answers judged pairwise, on a budget
    dataset.py  the log as a labelled table (`confroute logs export`, `train --data.source URL`)
    gate.py     the promotion gate (`confroute gate`)
    served.py   the served artifact: its identity and the atomic swap of the served link
    routers.py  what the gate and the drift report read of a router
    drift.py    DriftMonitor, DriftSettings, PSI and KS; report.py: the drift report

What a service calls (every call but `feedback` returns in microseconds and never waits for the
database; see each module for its threading model):

    identity = served.identity(link)                     # at load and at each reload
    log = DecisionLog.open(settings.log, prices)         # at startup
    log.record(Entry(request_id, identity, text, models, chosen_model, ...))  # per request
    result = await log.afeedback(request_id, rating=None, thumbs="up", source="user")
    shadow = ShadowJudge(settings.shadow, call, prices, log.add_outcome,
                         spent_today(log.engine)); shadow.start()          # in the event loop
    shadow.offer(ShadowRequest(...))                     # after the client has its answer
    monitor = DriftMonitor(settings.drift, RouterView(router, identity).target_share())
    monitor.observe(score, up, cost_usd, top_cost_usd)   # per request
    log.stats(), shadow.stats(), monitor.stats()         # numbers for /metrics
    await shadow.aclose(); log.close()                   # at shutdown

Modules are imported by name (this package imports none of them), so loading `served` or
`drift` does not need SQLAlchemy.
"""
