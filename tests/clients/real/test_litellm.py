"""litellm against g4serve as an OpenAI-compatible endpoint: chat completion (openai/ provider)
and text completion with a list of prompts (text-completion-openai/ provider, one request with
several prompts). The reference: greedy decoding, so each choice of the several-prompt request
equals the completion of its prompt sent alone, in prompt order."""
import litellm

from conftest import MODEL


def test_chat_completion(base_v1):
    r = litellm.completion(model="openai/" + MODEL, api_base=base_v1, api_key="none", max_tokens=8, temperature=0,
                           messages=[{"role": "user", "content": "Say hello"}], num_retries=0)
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("length", "stop")
    assert 0 < r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 0


def test_chat_completion_stream(base_v1):
    kw = dict(model="openai/" + MODEL, api_base=base_v1, api_key="none", max_tokens=10, temperature=0,
              messages=[{"role": "user", "content": "Count"}], num_retries=0)
    whole = litellm.completion(**kw).choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in litellm.completion(stream=True, **kw))
    assert streamed == whole


def test_text_completion_prompt_list(base_v1):
    prompts = ["The capital of France is", "One, two, three,", "Hello"]
    kw = dict(model="text-completion-openai/" + MODEL, api_base=base_v1, api_key="none", max_tokens=6,
              temperature=0, num_retries=0)
    r = litellm.text_completion(prompt=prompts, **kw)
    assert [c.index for c in r.choices] == [0, 1, 2]
    alone = [litellm.text_completion(prompt=p, **kw).choices[0].text for p in prompts]
    assert [c.text for c in r.choices] == alone
    assert r.usage.completion_tokens == sum(
        litellm.text_completion(prompt=p, **kw).usage.completion_tokens for p in prompts)
