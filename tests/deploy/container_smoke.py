"""container_smoke.py — the smoke test run against the CPU container image (container_test.sh
starts the image's entry point in a chroot + PID namespace on loopback, as the image's user).

usage: container_smoke.py BASE_URL SERVED_MODEL_NAME [SERVER_PID]
Waits for /v1/health/ready (giving up at once when SERVER_PID has exited) (the model is written and warmed inside the image), then with the
real openai client: the model list holds exactly the NIM_SERVED_MODEL_NAME given to the
container, and one chat completion returns text with consistent usage. /metrics serves the two
vllm: series the Kubernetes manifests scale and route on (num_requests_waiting for the HPA,
kv_cache_usage_perc for the InferencePool's endpoint picker). Exit 0 pass, 1 fail.
"""
import sys
import time
import urllib.error
import urllib.request

from openai import OpenAI


def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_ready(base, deadline_s, pid):
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        if pid and not running(pid):
            raise SystemExit("container_smoke: the server exited before it was ready")
        try:
            with urllib.request.urlopen(base + "/v1/health/ready", timeout=3) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = e
        time.sleep(0.5)
    raise SystemExit(f"container_smoke: not ready after {deadline_s} s ({last})")


def main():
    base, name = sys.argv[1], sys.argv[2]
    wait_ready(base, 180, int(sys.argv[3]) if len(sys.argv) > 3 else None)
    client = OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=120)
    ids = [m.id for m in client.models.list().data]
    assert ids == [name], f"models {ids}, expected [{name!r}]"
    r = client.chat.completions.create(model=name, max_tokens=8, temperature=0,
                                       messages=[{"role": "user", "content": "Hello"}])
    c = r.choices[0]
    assert r.model == name, r.model
    assert c.finish_reason in ("stop", "length"), c.finish_reason
    assert r.usage.completion_tokens >= 1 and r.usage.prompt_tokens >= 1, r.usage
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage
    assert c.message.content is not None or getattr(c.message, "reasoning_content", None) is not None, c.message
    with urllib.request.urlopen(base + "/metrics", timeout=10) as m:
        text = m.read().decode()
    for series in ("vllm:num_requests_waiting{", "vllm:kv_cache_usage_perc{"):
        assert series in text, f"/metrics lacks {series}"
    print(f"container_smoke: ready, models {ids}, chat completion {r.usage.completion_tokens} tokens "
          f"({c.finish_reason}), metrics ok")


if __name__ == "__main__":
    main()
