"""LangChain (langchain-openai's ChatOpenAI) against g4serve: invoke, stream, bind_tools with a
named tool_choice, with_structured_output(method="function_calling", strict=True). The references: greedy
decoding makes the streamed text equal the invoked text; forced tool calls must come back as
LangChain tool calls whose arguments validate against the tool's JSON schema (jsonschema) and
whose pydantic model parses. The tiny model's output is token soup, so the arguments are enums
and booleans (a free string argument would run to max_tokens inside the constrained call), and
the tools are bound with strict=True, so LangChain sends additionalProperties: false: g4serve
follows JSON Schema, where extra keys are allowed unless the schema says otherwise, and the
tiny model otherwise wanders into them (vLLM's xgrammar forbids them by default)."""
from typing import Literal

import jsonschema
import pydantic
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from conftest import MODEL


def chat(base_v1, **kw):
    return ChatOpenAI(model=MODEL, base_url=base_v1, api_key="none", temperature=0, max_retries=0, timeout=120, **kw)


def test_invoke_reports_content_and_usage(base_v1):
    msg = chat(base_v1, max_tokens=8).invoke("Say hello")
    assert isinstance(msg, AIMessage) and isinstance(msg.content, str) and msg.content
    assert msg.response_metadata["finish_reason"] in ("length", "stop")
    assert msg.response_metadata["model_name"] == MODEL
    usage = msg.usage_metadata
    assert usage["input_tokens"] > 0 and 0 < usage["output_tokens"] <= 8
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_stream_equals_invoke(base_v1):
    llm = chat(base_v1, max_tokens=12, stream_usage=True)
    whole = llm.invoke("Count to five")
    chunks = list(llm.stream("Count to five"))
    assert len(chunks) > 1
    joined = chunks[0]
    for c in chunks[1:]:
        joined = joined + c
    assert joined.content == whole.content
    assert joined.usage_metadata["output_tokens"] == whole.usage_metadata["output_tokens"]


@tool
def get_weather(city: Literal["Paris", "Rome"], unit: Literal["C", "F"]) -> str:
    """The weather forecast for a city over some days."""
    return "sunny"


@tool
def get_time(zone: Literal["UTC", "CET"]) -> str:
    """The current time in a time zone."""
    return "noon"


def test_bind_tools_named_tool_choice_forces_that_tool(base_v1):
    llm = chat(base_v1, max_tokens=200).bind_tools([get_weather, get_time], tool_choice="get_weather", strict=True)
    msg = llm.invoke("What time is it in Paris?")
    assert len(msg.tool_calls) == 1, msg
    call = msg.tool_calls[0]
    assert call["name"] == "get_weather"
    jsonschema.validate(call["args"], get_weather.tool_call_schema.model_json_schema())
    assert not msg.invalid_tool_calls


class Person(pydantic.BaseModel):
    """A person."""
    name: Literal["Ada", "Alan"]
    adult: bool


def test_with_structured_output_function_calling(base_v1):
    structured = chat(base_v1, max_tokens=200).with_structured_output(Person, method="function_calling", strict=True)
    person = structured.invoke("Invent a person")
    assert isinstance(person, Person)
