"""moto's server, serving one request at a time.

moto's Kinesis `Shard.put_record` says of itself "this function is not safe for
concurrency": two concurrent PutRecords on one shard can get the same sequence number,
and one record silently replaces the other (both callers are told they succeeded). Our
tests count every record, so the local stack runs moto with `threaded=False`. Started by
`devstack.moto_server()`: `python -m outpost.dev.moto_serial PORT`.
"""

from __future__ import annotations

import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    port = int(sys.argv[1])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
