"""Sluice's stand-in for kafka-python's `test/service.py`, which its source distribution leaves out.

The integration fixtures only need `ExternalService` when `KAFKA_URI` points them at a running
broker (the broker is Sluice, started by ../kafka-python.sh); they never spawn a Kafka here.
"""


class ExternalService:
    def __init__(self, host, port):
        self.host = host
        self.port = port

    def open(self):
        pass

    def close(self):
        pass

    def dump_logs(self):
        pass

    def wait_for(self, pattern, timeout=30):
        return True


class SpawnedService:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("the kafka-python suite runs against Sluice; it never spawns a Kafka")
