"""Serving with gunicorn from ``coalition serve``.

Workers each build their own app (no connections cross a fork); the
scheduler runs once, in the gunicorn master, and its jobs take a database
lock, so several ``serve`` processes may run side by side.
"""

from gunicorn.app.base import BaseApplication

from coalition import create_app


class Server(BaseApplication):
    def __init__(self, options: dict, scheduler: bool):
        self.options = options
        self.scheduler = scheduler
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if self.scheduler:
            self.cfg.set("when_ready", _start_scheduler)

    def load(self):
        return create_app()


def _start_scheduler(arbiter):
    from coalition import jobs

    arbiter.coalition_scheduler = jobs.start(create_app())


def run(host: str, port: int, workers: int, scheduler: bool) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 8,
        "accesslog": "-",
    }
    Server(options, scheduler).run()
