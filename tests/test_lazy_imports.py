"""The brokers' client libraries load at a type's first use (`destinations.lazy`), not in
every process that builds the registry: a fresh interpreter builds it as the services do,
lists the destination types, closes it, and must not have imported any of them."""

import json
import subprocess
import sys

# the top-level packages of the libraries loaded lazily, by the type that needs them
LAZY = {
    "gcp_pubsub": ["google.cloud.pubsub_v1", "google.pubsub_v1", "grpc"],
    "azure_servicebus": ["azure.servicebus"],
    "kafka": ["aiokafka"],
    "rabbitmq": ["aio_pika", "aiormq"],
}

PROGRAM = """
import asyncio, importlib, json, sys
from outpost.deps import build_registry
from outpost.settings import Settings

registry = build_registry(Settings())
registry.type_schemas()
asyncio.run(registry.close())
names = json.loads(sys.argv[1])
loaded = sorted(n for n in names if n in sys.modules)
for name in names:  # each name is a real module: the check above can fail
    importlib.import_module(name)
print(json.dumps({"types": sorted(t.type for t in registry.all()), "loaded": loaded}))
"""


def test_building_the_registry_imports_no_broker_client_library():
    names = [name for found in LAZY.values() for name in found]
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert set(LAZY) <= set(out["types"])
    assert out["loaded"] == []
