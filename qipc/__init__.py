"""kdb+ IPC: the q wire format, Arrow conversion, a reusable server and a small client.

``import qipc`` stays cheap: nothing here imports PyKX.
"""

from qipc.client import QClient
from qipc.codec import decode, encode, parse_header
from qipc.limits import ServerLimits
from qipc.server import Authenticator, Handler, QConnection, QIpcServer
from qipc.types import (
    ASYNC,
    RESPONSE,
    SYNC,
    Char,
    KeyedTable,
    MsgType,
    QDict,
    QError,
    QLambda,
    QPrimitive,
    QProtocolError,
    QTable,
    Symbol,
)

__all__ = [
    "ASYNC",
    "RESPONSE",
    "SYNC",
    "Authenticator",
    "Char",
    "Handler",
    "KeyedTable",
    "MsgType",
    "QClient",
    "QConnection",
    "QDict",
    "QError",
    "QIpcServer",
    "QLambda",
    "QPrimitive",
    "QProtocolError",
    "QTable",
    "ServerLimits",
    "Symbol",
    "decode",
    "encode",
    "parse_header",
]
