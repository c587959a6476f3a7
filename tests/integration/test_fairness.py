"""test_fairness.py - fair admission across clients on a real g4serve (issue 20, item 5): client A's
chat request with n = 64 (all of --max-num-seqs 64 running slots) and client B's short request,
the two told apart by the x-g4-client-id header the server trusts with --trust-client-id.

With the default cap (half of --max-num-seqs) B is admitted while A holds the batch (A's newest
sequence gives its slot back and is recomputed) and ends long before A; A still gets all 64
choices in full. With --max-running-per-client 0 (first come, first served) B waits for A's
sequences to end: the control that shows the measurement can fail; so it does when the header is
not trusted (both come from one loopback address: one client). Afterwards no request runs and
no KV block is used. Bounded: every request has a timeout, every wait a deadline."""
import os
import threading
import time

import openai

from conftest import gauges

SAN = os.environ.get("G4_SANITIZE") == "1"
MODEL = "g4serve-tiny"
# A's n = all the running slots. A step of the CPU model costs about its rows (a 262,144-token
# vocabulary): sanitizer builds, many times slower, race 16 slots.
N = 16 if SAN else 64
A_TOKENS = 24 if SAN else 30  # A's choices run this long (ignore_eos)
B_TOKENS = 2  # B's: its prefill step and one decode


def settled(base, timeout=60):
    deadline = time.time() + timeout
    while True:
        g = gauges(base)
        if g["g4_kv_blocks_used"] == 0 and g["vllm:num_requests_running"] == 0 and g["vllm:num_requests_waiting"] == 0:
            return g
        assert time.time() < deadline, {k: g[k] for k in ("g4_kv_blocks_used", "vllm:num_requests_running")}
        time.sleep(0.1)


def race(server):
    """A streams n = 64 choices; once all 64 run and have tokens, B sends one short request.
    Returns (seconds from B's start to B's end, seconds from B's start to A's end, A's chunks)."""
    client = openai.OpenAI(base_url=server.base + "/v1", api_key="none", max_retries=0, timeout=300)
    a = {"tokens": [0] * N, "finish": [None] * N, "error": None, "end": None}
    started = threading.Event()

    def run_a():
        try:
            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "tell a long story"}], n=N,
                max_tokens=A_TOKENS, stream=True, extra_headers={"x-g4-client-id": "A"},
                extra_body={"ignore_eos": True})
            for chunk in stream:
                for ch in chunk.choices:
                    if ch.delta and ch.delta.content is not None:
                        a["tokens"][ch.index] += 1
                    if ch.finish_reason:
                        a["finish"][ch.index] = ch.finish_reason
                if not started.is_set() and min(a["tokens"]) >= 3:
                    started.set()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            a["error"] = repr(e)
        finally:
            a["end"] = time.time()
            started.set()

    t = threading.Thread(target=run_a, daemon=True)
    t.start()
    assert started.wait(timeout=120), "A's choices did not start"
    assert a["error"] is None and a["end"] is None, a
    running = gauges(server.base)["vllm:num_requests_running"]
    b0 = time.time()
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=B_TOKENS,
        extra_headers={"x-g4-client-id": "B"}, extra_body={"ignore_eos": True})
    b1 = time.time()
    t.join(timeout=300)
    assert not t.is_alive(), "A did not finish"
    assert a["error"] is None, a["error"]
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == B_TOKENS, r
    # A gets every choice in full, whoever else ran
    assert a["finish"] == ["length"] * N, a["finish"]
    assert running == N, f"A held {running} running sequences when B came, not {N}"
    return b1 - b0, a["end"] - b0


def test_newcomer_runs_beside_a_full_batch(make_server):
    s = make_server(["--max-num-seqs", str(N), "--trust-client-id"])
    b, a = race(s)
    print(f"fair: B took {b:.2f} s, A ended {a:.2f} s after B started")
    assert b < a / 4, f"B took {b:.2f} s, A ended {a:.2f} s after B started"
    g = settled(s.base)
    assert g["vllm:num_preemptions_total"] >= 1, "no slot was taken back from A"


def test_first_come_first_served_without_the_cap(make_server):
    s = make_server(["--max-num-seqs", str(N), "--trust-client-id", "--max-running-per-client", "0"])
    b, a = race(s)
    print(f"FCFS: B took {b:.2f} s, A ended {a:.2f} s after B started")
    assert b > a / 2, f"B took {b:.2f} s although A ended {a:.2f} s after B started: B did not wait"
    g = settled(s.base)
    assert g["vllm:num_preemptions_total"] == 0


def test_untrusted_header_is_ignored(make_server):
    """Without --trust-client-id the header names nobody: A and B (one loopback address) are one
    client, so B waits behind A as under FCFS."""
    s = make_server(["--max-num-seqs", str(N)])
    b, a = race(s)
    print(f"untrusted header: B took {b:.2f} s, A ended {a:.2f} s after B started")
    assert b > a / 2, f"B took {b:.2f} s although A ended {a:.2f} s after B started: the header was trusted"
    settled(s.base)
