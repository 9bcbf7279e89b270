"""Serve one OpenStack WSGI app with gunicorn (run with the services' venv python).

usage: wsgi_serve.py MODULE PROG HOST PORT

The apps parse sys.argv through oslo.config, so gunicorn's own command line cannot be used:
this drives gunicorn's BaseApplication from Python. keepalive 75 s: with gunicorn's 2 s default,
openstacksdk's 2 s polling races the server closing the connection (RemoteDisconnected).
"""

import importlib
import sys

from gunicorn.app.base import BaseApplication

MODULE, PROG, HOST, PORT = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


class App(BaseApplication):
    def load_config(self):
        settings = {
            "bind": f"{HOST}:{PORT}",
            "workers": 1,
            "threads": 4,
            "worker_class": "gthread",
            "timeout": 300,
            "graceful_timeout": 5,
            "keepalive": 75,
            "accesslog": "-",
            "errorlog": "-",
            "proc_name": PROG,
            "control_socket_disable": True,  # gunicorn 25+ would share ~/.gunicorn/gunicorn.ctl
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        sys.argv = [PROG]
        return importlib.import_module(MODULE).application


if __name__ == "__main__":
    App().run()
