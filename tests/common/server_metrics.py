"""What a running g4serve's /metrics says, read with prometheus_client's parser (an exposition-format
reader independent of the server's writer): each sample name's value summed over its labels. One
copy for the HTTP and gRPC integration tests, which poll it to see requests and KV blocks drain."""
import requests
from prometheus_client.parser import text_string_to_metric_families


def gauges(base, timeout=30):
    """GET base + "/metrics" (base: "http://127.0.0.1:PORT") as {sample name: value summed over labels}."""
    out = {}
    for fam in text_string_to_metric_families(requests.get(base + "/metrics", timeout=timeout).text):
        for s in fam.samples:
            out[s.name] = out.get(s.name, 0) + s.value
    return out
