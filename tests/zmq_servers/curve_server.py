"""A CURVE server for the ZAP tests: the ``[auth]`` of a config decides who gets in.

Run as ``python curve_server.py --config FILE --secret FILE --ready-file PATH``. It binds a
ROUTER that answers each message with ``[User-Id, payload]`` (who libzmq says sent it) and a
PUB that sends a numbered tick every 20 ms, writes ``{"router": …, "pub": …}`` to the ready
file, and stops on SIGTERM. The ZAP handler logs to stderr.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

import zmq

from tickdb.auth import Authorizer
from tickdb.config import load_config
from tickdb.keyfiles import read_key
from tickdb.logs import setup_logging
from tickdb.ready import write_ready
from tickdb.zap import ZapHandler, curve_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--secret", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    setup_logging()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    context = zmq.Context()
    zap = ZapHandler(context, Authorizer(load_config(args.config).auth)).start()
    secret = read_key(args.secret)
    router = context.socket(zmq.ROUTER)
    pub = context.socket(zmq.PUB)
    for sock in (router, pub):
        sock.linger = 0
        curve_server(sock, secret)
    endpoints = {}
    for name, sock in (("router", router), ("pub", pub)):
        sock.bind("tcp://127.0.0.1:0")
        endpoints[name] = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    write_ready(args.ready_file, endpoints)
    tick = 0
    while not stop.is_set():
        if router.poll(20):
            routing_id, payload = router.recv_multipart(copy=False)
            user_id = payload.get("User-Id")
            identity = zap.identity_of(payload)
            name = identity.name if identity else "?"
            router.send_multipart([routing_id.bytes, f"{user_id}|{name}".encode(), payload.bytes])
        tick += 1
        pub.send(b"tick %d" % tick)
    router.close()
    pub.close()
    zap.stop()
    context.term()


if __name__ == "__main__":
    main()
