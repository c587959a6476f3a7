"""test_spec_config.py - speculative decoding's configuration and counters on the real g4serve.

* Each accepted form of vLLM's --speculative-config (and the G4_SPECULATIVE_CONFIG variable)
  starts the server on loopback, logs the effective setting once at start-up as vLLM-named JSON
  (defaults filled in), serves a completion (openai client), and exposes vLLM's spec_decode_*
  counters with one `position` series per proposed token, read with prometheus_client.
* Without a config, no spec_decode family is exposed (as vLLM does), and the log says "off".
* Each refused config exits non-zero before serving, naming the offending field on stderr; the
  flag wins over the variable.
* The counters carry the engine's numbers (g4_engine_stats) under the right names and labels:
  spec_metrics_render prints the exposition for chosen numbers, parsed by prometheus_client.
"""
import json
import os
import pathlib
import signal
import sys
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import built  # noqa: E402  (tests/common/built.py: where the build put a program)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC_FAMILIES = ("vllm:spec_decode_num_drafts", "vllm:spec_decode_num_draft_tokens",
                 "vllm:spec_decode_num_accepted_tokens", "vllm:spec_decode_num_accepted_tokens_per_pos")


def binary(var, rel):
    return built.locate(var, rel) or pytest.skip(f"{rel} not built (or set {var})")


@pytest.fixture(scope="session")
def draft_dir(tmp_path_factory):
    """A second tiny checkpoint to name as the draft model (same geometry and vocabulary)."""
    d = tmp_path_factory.mktemp("draft") / "tiny-draft"
    subprocess.run([binary("G4_MAKE_TINY", "csrc/tools/g4-make-tiny"), "--config", "tiny-dense", "--seed", "5",
                    "--out", str(d)], check=True, capture_output=True, timeout=120)
    return d


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models") / "tiny-dense"


def start(args, env, tmp, model_dir):
    e = dict(os.environ)
    e.pop("G4_SPECULATIVE_CONFIG", None)
    e.update(env)
    err = open(tmp / "stderr.txt", "w")
    p = subprocess.Popen([binary("G4SERVE", "csrc/server/g4serve"), "--host", "127.0.0.1", "--port", "0",
                          "--grpc-port", "0", "--default-model-dir", str(model_dir)] + args,
                         cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=err, text=True)
    return p


def stderr_of(tmp):
    return (tmp / "stderr.txt").read_text()


def serve(args, env, tmp, model_dir):
    """Starts g4serve, waits for ready; returns (process, base URL)."""
    p = start(args, env, tmp, model_dir)
    line = p.stdout.readline()
    if not line.startswith("g4serve: port "):
        p.kill()
        pytest.fail("g4serve did not start: " + stderr_of(tmp))
    base = "http://127.0.0.1:%d" % int(line.split()[-1])
    deadline = time.time() + 120
    while time.time() < deadline:
        if p.poll() is not None:
            pytest.fail("g4serve exited: " + stderr_of(tmp))
        try:
            if requests.get(base + "/v1/health/ready", timeout=2).status_code == 200:
                return p, base
        except requests.RequestException:
            pass
        time.sleep(0.05)
    p.kill()
    pytest.fail("g4serve not ready: " + stderr_of(tmp))


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def families(text):
    """Counter families by their base name (prometheus_client strips _total)."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def logged_setting(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("g4serve: speculative config: ")]
    assert len(lines) == 1, text
    v = lines[0].split(": ", 2)[2]
    return v if v == "off" else json.loads(v)


NGRAM = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4, "prompt_lookup_min": 2}


@pytest.mark.parametrize("form", ["flag-ngram", "env-ngram-defaults", "flag-legacy-ngram", "env-draft", "flag-draft"])
def test_good_config_starts_logs_and_counts(form, tmp_path, model_dir, draft_dir):
    if form == "flag-ngram":
        cfg, via_env, want = NGRAM, False, NGRAM
    elif form == "env-ngram-defaults":  # vLLM's lookup defaults: 5 and 5
        cfg, via_env = {"method": "ngram", "num_speculative_tokens": 3, "disable_by_batch_size": 16}, True
        want = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 5, "prompt_lookup_min": 5,
                "disable_by_batch_size": 16}
    elif form == "flag-legacy-ngram":
        cfg, via_env = {"model": "[ngram]", "num_speculative_tokens": 2, "prompt_lookup_max": 3}, False
        want = {"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 3, "prompt_lookup_min": 3}
    else:
        cfg = {"model": str(draft_dir), "num_speculative_tokens": 5}
        if form == "flag-draft":
            cfg["method"] = "draft_model"
        via_env = form == "env-draft"
        want = {"method": "draft_model", "model": str(draft_dir), "num_speculative_tokens": 5}
    text = json.dumps(cfg)
    args, env = ([], {"G4_SPECULATIVE_CONFIG": text}) if via_env else (["--speculative-config", text], {})
    p, base = serve(args, env, tmp_path, model_dir)
    try:
        assert logged_setting(stderr_of(tmp_path)) == want
        import openai
        client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=120)
        r = client.completions.create(model="g4serve-tiny", prompt="a b c a b c a b c a b", max_tokens=12,
                                      temperature=0, extra_body={"ignore_eos": True})
        assert r.usage.completion_tokens == 12
        fams = families(requests.get(base + "/metrics", timeout=10).text)
    finally:
        assert stop(p) == 0, stderr_of(tmp_path)
    k = want["num_speculative_tokens"]
    for name in SPEC_FAMILIES:
        assert name in fams and fams[name].type == "counter", name
        for s in fams[name].samples:
            assert s.name == name + "_total" and s.labels["model_name"] == "g4serve-tiny", s
    per_pos = fams["vllm:spec_decode_num_accepted_tokens_per_pos"].samples
    assert [s.labels["position"] for s in per_pos] == [str(i) for i in range(k)]
    one = {n: fams[n].samples[0].value for n in SPEC_FAMILIES[:3]}
    drafts, drafted, accepted = one.values()
    at = [s.value for s in per_pos]
    # what every speculating engine's counters satisfy (all zero while the engine has no proposer)
    assert accepted <= drafted <= k * drafts
    assert sum(at) == accepted
    assert all(a >= b for a, b in zip([drafts] + at, at))


def test_off_by_default_and_empty_variable(tmp_path, model_dir):
    p, base = serve([], {"G4_SPECULATIVE_CONFIG": ""}, tmp_path, model_dir)
    try:
        text = requests.get(base + "/metrics", timeout=10).text
    finally:
        assert stop(p) == 0
    assert logged_setting(stderr_of(tmp_path)) == "off"
    fams = families(text)
    assert "vllm:num_requests_running" in fams
    assert not [n for n in fams if "spec_decode" in n]


BAD = [
    ('{"method":"eagle","model":"x","num_speculative_tokens":4}', "method"),
    ('{"method":"eagle3","num_speculative_tokens":4}', "method"),
    ('{"method":"medusa","num_speculative_tokens":4}', "method"),
    ('{"method":"mtp","num_speculative_tokens":1}', "method"),
    ('{"method":"mlp_speculator","num_speculative_tokens":1}', "method"),
    ('{"num_speculative_tokens":4}', "method"),
    ('{"method":"ngram"}', "num_speculative_tokens"),
    ('{"method":"ngram","num_speculative_tokens":0}', "num_speculative_tokens"),
    ('{"method":"ngram","num_speculative_tokens":"4"}', "num_speculative_tokens"),
    ('{"method":"ngram","num_speculative_tokens":4,"prompt_lookup_min":0}', "prompt_lookup_min"),
    ('{"method":"ngram","num_speculative_tokens":4,"prompt_lookup_min":4,"prompt_lookup_max":2}', "prompt_lookup_min"),
    ('{"method":"ngram","num_speculative_tokens":4,"disable_by_batch_size":1}', "disable_by_batch_size"),
    ('{"method":"ngram","num_speculative_tokens":4,"speculative_token_tree":"x"}', "speculative_token_tree"),
    ('{"method":"draft_model","num_speculative_tokens":4}', "model"),
    ('{"model":"hf://google/gemma-4-e2b","num_speculative_tokens":4}', "model"),
    ('{"model":"/nonexistent/draft","num_speculative_tokens":4}', "model"),
    ('{"method":"ngram",', "JSON"),
    ('["ngram"]', "object"),
]


@pytest.mark.parametrize("cfg,field", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("via", ["flag", "env"])
def test_bad_config_is_refused_naming_the_field(cfg, field, via, tmp_path, model_dir):
    args, env = (["--speculative-config", cfg], {}) if via == "flag" else ([], {"G4_SPECULATIVE_CONFIG": cfg})
    p = start(args, env, tmp_path, model_dir)
    try:
        rc = p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        stop(p)
        pytest.fail("g4serve started with " + cfg)
    err = stderr_of(tmp_path)
    assert rc != 0, err
    line = [ln for ln in err.splitlines() if "speculative" in ln.lower() or "G4_SPECULATIVE_CONFIG" in ln]
    assert line and field in line[-1], err
    assert ("--speculative-config: " if via == "flag" else "G4_SPECULATIVE_CONFIG: ") in line[-1], err
    assert "ready" not in err


def test_flag_wins_over_variable(tmp_path, model_dir):
    p, _ = serve(["--speculative-config", json.dumps(NGRAM)], {"G4_SPECULATIVE_CONFIG": '{"method":"eagle"}'},
                 tmp_path, model_dir)
    assert stop(p) == 0
    assert logged_setting(stderr_of(tmp_path)) == NGRAM


def render(*numbers):
    out = subprocess.run([binary("G4_SPEC_METRICS_RENDER", "tests/server/spec_metrics_render")] +
                         [str(n) for n in numbers], capture_output=True, text=True, timeout=30, check=True)
    return families(out.stdout)


def test_counters_carry_the_engine_numbers():
    fams = render(4, 11, 40, 23, 9, 7, 5, 2, 99)  # k = 4: the fifth position is not exposed
    value = {n: fams[n].samples[0].value for n in SPEC_FAMILIES[:3]}
    assert value == {"vllm:spec_decode_num_drafts": 11, "vllm:spec_decode_num_draft_tokens": 40,
                     "vllm:spec_decode_num_accepted_tokens": 23}
    per_pos = {s.labels["position"]: s.value for s in fams["vllm:spec_decode_num_accepted_tokens_per_pos"].samples}
    assert per_pos == {"0": 9, "1": 7, "2": 5, "3": 2}
    assert all(s.labels["model_name"] == "spec-test" for n in SPEC_FAMILIES for s in fams[n].samples)
    assert not [n for n in render(0, 11, 40, 23, 9) if "spec_decode" in n]
