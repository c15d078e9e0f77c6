#!/usr/bin/env python3
"""The bench's fake downloads.openwrt.org: a static file server on 127.0.0.1.

    upstream.py ROOT PORT

Python's own threaded http.server over ROOT, quiet, with one addition the
reference server's metadata refresh relies on: `<path>/targets?json-targets`
answers the JSON list of `target/subtarget` directories under it (the real
upstream's web server does this; a plain directory listing would not parse).
Everything else is plain static serving, with Last-Modified headers.
"""
import json
import os
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def json_targets(self):
        parts = urlsplit(self.path)
        if parts.query != "json-targets" or not parts.path.rstrip("/").endswith("/targets"):
            return False
        base = self.translate_path(parts.path)
        if not os.path.isdir(base):
            return False
        found = sorted(
            f"{t}/{s}"
            for t in os.listdir(base)
            if os.path.isdir(os.path.join(base, t))
            for s in os.listdir(os.path.join(base, t))
            if os.path.isdir(os.path.join(base, t, s))
        )
        body = json.dumps(found).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return True

    def do_GET(self):
        if not self.json_targets():
            super().do_GET()

    def do_HEAD(self):
        if not self.json_targets():
            super().do_HEAD()


def main():
    root, port = sys.argv[1], int(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(Handler, directory=root))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
