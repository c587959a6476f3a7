#!/usr/bin/env python3
"""make_chat_cases.py - renders the chat-template golden cases with jinja2.

Reads /work/shared/gemma4/chat_template.jinja (or the path in $G4_CHAT_TEMPLATE), renders every
case below with jinja2 the way transformers does (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, raise_exception) and writes tests/text/data/chat_cases.json:
  {"name", "messages", "tools"?, "options", "expected" (the template's exact output) or
   "error": true (the template raised), "expected_fixed" (with the documented generation-prompt
   fix: when the prompt so far ends with a closed "<turn|>\\n" and a generation prompt is asked
   for, open "<|turn>model\\n" as for any other turn; the template emits nothing or a bare
   "<|channel>thought\\n" there)}.
Also writes tests/text/data/chat_random_cases.json: RANDOM_CASES seeded random conversations and
tool lists of every shape the template accepts or raises on (null / missing / wrong-typed
values, odd schemas), rendered the same way.
Deterministic. Python is only needed to regenerate; the C test reads the JSON.

Input limits of the C renderer that the cases respect: numbers arrive as cJSON doubles, so an
integral float such as 1.0 prints as 1 (Python prints 1.0); dictsort lower-cases ASCII only.
"""
import copy
import json
import os
import random

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.environ.get("G4_CHAT_TEMPLATE", "/work/shared/gemma4/chat_template.jinja")
RANDOM_CASES = 600  # data/chat_random_cases.json: random shapes, seeded (random_cases below)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get current weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search_docs", "description": "Search the documentation",
    "parameters": {"type": "object", "properties": {
        "query": {"type": "string", "description": "What to look for"},
        "limit": {"type": "integer", "description": "Max results"},
        "filters": {"type": "object", "description": "Optional filters", "properties": {
            "lang": {"type": "string", "enum": ["en", "fr"]},
            "since": {"type": "string", "nullable": True}}, "required": ["lang"]},
        "tags": {"type": "array", "description": "Tags", "items": {"type": "string"}},
        "points": {"type": "array", "items": {"type": "object", "properties": {
            "x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
        "mode": {"type": ["string", "null"], "description": "Union type"},
        "Zeta": {"type": "boolean", "description": "Capitalised key sorts case-insensitively"},
        "alpha": {"type": "boolean"}},
        "required": ["query"]}}}
NOPARAM = {"type": "function", "function": {"name": "get_time", "description": "Current time"}}
EMPTYPARAM = {"type": "function", "function": {"name": "ping", "description": "Ping",
                                               "parameters": {"type": "object", "properties": {}}}}
WITHRESP = {"type": "function", "function": {
    "name": "lookup", "description": "Look up a key",
    "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
    "response": {"type": "object", "description": "The value found"}}}
NOTYPE = {"type": "function", "function": {
    "name": "odd", "description": "Parameters without a type",
    "parameters": {"properties": {"a": {"type": "string"}}}}}
ITEMS = {"type": "function", "function": {
    "name": "plot", "description": "Plot series",
    "parameters": {"type": "object", "properties": {
        "series": {"type": "array", "description": "Series", "items": {
            "type": ["number", "null"], "enum": [1, 2.5, "x"], "minItems": 1,
            "extra": {"B": 1, "a": [True, None]}}},
        "opts": {"type": "object", "description": "Free-form", "color": {"type": "string"},
                 "width": {"type": "integer", "description": "px"}},
        "choice": {"type": "STRING", "enum": ["a", "b"], "nullable": True}},
        "required": ["series"]}}}

U = lambda t: {"role": "user", "content": t}
A = lambda t: {"role": "assistant", "content": t}
S = lambda t: {"role": "system", "content": t}


def call(name, args, cid=None):
    c = {"type": "function", "function": {"name": name, "arguments": args}}
    if cid is not None:
        c["id"] = cid
    return c


def tool_msg(content, cid=None, name=None):
    m = {"role": "tool", "content": content}
    if cid is not None:
        m["tool_call_id"] = cid
    if name is not None:
        m["name"] = name
    return m


CASES = [
    ("plain_user", [U("Hello")], None, {}),
    ("system_user", [S("You are a helpful assistant."), U("Hello")], None, {}),
    ("developer_user", [{"role": "developer", "content": "Be terse."}, U("Hi")], None, {}),
    ("multi_turn", [U("Hi"), A("Hello! How can I help?"), U("What is 2+2?")], None, {}),
    ("thinking_no_system", [U("What is 2+2?")], None, {"enable_thinking": True}),
    ("thinking_system", [S("Be brief."), U("What is 2+2?")], None, {"enable_thinking": True}),
    ("thinking_old_reasoning_dropped",
     [U("Hi"), {"role": "assistant", "content": "Hello!", "reasoning_content": "Greet back."},
      U("Bye")], None, {"enable_thinking": True}),
    ("reasoning_after_last_user",
     [U("Hi"), {"role": "assistant", "content": "Hello!", "reasoning": "Greet back."}], None,
     {"enable_thinking": True, "add_generation_prompt": False}),
    ("reasoning_field_precedence",
     [U("Hi"), {"role": "assistant", "content": "Yo", "reasoning": "r1", "reasoning_content": "r2"}],
     None, {"add_generation_prompt": False}),
    ("tool_declaration", [U("Weather in Paris?")], [WEATHER], {}),
    ("tool_declaration_complex", [U("Find docs")], [SEARCH, NOPARAM, EMPTYPARAM], {}),
    ("tool_declaration_response", [S("Use tools."), U("Look up k")], [WITHRESP], {}),
    ("tool_declaration_no_type", [U("x")], [NOTYPE], {}),
    ("tool_declaration_items", [U("plot it")], [ITEMS], {"enable_thinking": True}),
    ("tool_call_openai",
     [U("Weather in Paris?"),
      {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris", "unit": "celsius"},
                                                "call_1")]},
      tool_msg('{"temp": 18, "sky": "clear"}', "call_1")], [WEATHER], {}),
    ("tool_call_thinking",
     [U("Weather in Paris?"),
      {"role": "assistant", "reasoning_content": "Need the tool.",
       "tool_calls": [call("get_weather", {"city": "Paris"}, "c1")]},
      tool_msg("18C clear", "c1")], [WEATHER], {"enable_thinking": True}),
    ("tool_full_loop",
     [U("Weather in Paris?"),
      {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris"}, "c1")]},
      tool_msg("18C clear", "c1"), A("It is 18C and clear in Paris."), U("Thanks")], [WEATHER], {}),
    ("tool_full_loop_thinking",
     [U("Weather in Paris?"),
      {"role": "assistant", "reasoning_content": "Call it.",
       "tool_calls": [call("get_weather", {"city": "Paris"}, "c1")]},
      tool_msg("18C clear", "c1"),
      {"role": "assistant", "content": "It is 18C.", "reasoning_content": "Answer now."}],
     [WEATHER], {"enable_thinking": True}),
    ("native_tool_responses_with_content",
     [U("Weather in London?"),
      {"role": "assistant", "tool_calls": [call("get_weather", {"city": "London"})],
       "tool_responses": [{"name": "get_weather", "response": {"temperature": 15,
                                                              "weather": "sunny"}}],
       "content": "It is 15 and sunny."}], [WEATHER], {}),
    ("native_tool_responses_with_content_thinking",
     [U("Weather in London?"),
      {"role": "assistant", "tool_calls": [call("get_weather", {"city": "London"})],
       "tool_responses": [{"name": "get_weather", "response": {"temperature": 15}}],
       "content": "It is 15."}], [WEATHER], {"enable_thinking": True}),
    ("native_tool_responses_no_content",
     [U("Weather in London?"),
      {"role": "assistant", "tool_calls": [call("get_weather", {"city": "London"})],
       "tool_responses": [{"name": "get_weather", "response": "rainy"},
                          {"response": {"B": [1, 2], "a": None}}]}], [WEATHER], {}),
    ("parallel_calls_matched_by_id",
     [U("Paris and Rome?"),
      {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris"}, "a"),
                                           call("search_docs", {"query": "Rome"}, "b")]},
      tool_msg("rome docs", "b"), tool_msg("paris sunny", "a")], [WEATHER, SEARCH], {}),
    ("tool_result_name_fallback",
     [U("x"), {"role": "assistant", "tool_calls": [call("get_weather", {"city": "X"}, "id1")]},
      tool_msg("r1", "other", name="by_name"), tool_msg("r2")], [WEATHER], {}),
    ("tool_result_no_ids",
     [U("x"), {"role": "assistant", "tool_calls": [call("get_weather", {"city": "X"}),
                                                   call("get_time", {})]},
      tool_msg("r1"), tool_msg("r2")], [WEATHER, NOPARAM], {}),
    ("tool_content_parts",
     [U("Show me"), {"role": "assistant", "tool_calls": [call("render", {"w": 2}, "r")]},
      tool_msg([{"type": "text", "text": "Rendered "}, {"type": "image"},
                {"type": "text", "text": "ok"}, {"type": "input_audio"}, {"type": "video"}], "r")],
     None, {}),
    ("tool_content_mapping",
     [U("Show me"), {"role": "assistant", "tool_calls": [call("stats", None, "s")]},
      tool_msg({"count": 3, "Avg": 1.5, "names": ["a", "b"], "ok": True}, "s")], None, {}),
    ("tool_content_null",
     [U("q"), {"role": "assistant", "tool_calls": [call("f", {}, "x")]}, tool_msg(None, "x")],
     None, {"add_generation_prompt": False}),
    ("tool_call_null_arguments",
     [U("Time?"), {"role": "assistant", "tool_calls": [call("get_time", None)]}], [NOPARAM], {}),
    ("tool_call_string_arguments_error",
     [U("Time?"), {"role": "assistant", "tool_calls": [call("get_time", '{"tz": "UTC"}')]}],
     [NOPARAM], {}),
    ("tool_call_pending_last",
     [U("Weather?"), {"role": "assistant", "content": "Let me check.",
                      "tool_calls": [call("get_weather", {"city": "Oslo"}, "c")]}], [WEATHER], {}),
    ("tool_call_mixed_types",
     [U("f"), {"role": "assistant", "tool_calls": [call("f", {
         "s": "a,b{c}", "n": 42, "x": 1.5, "b": True, "z": None, "arr": [1, "two", False],
         "obj": {"k": "v", "inner": {"q": 1}}}, "f1")]}, tool_msg("done", "f1")], None, {}),
    ("tool_call_key_case_sort",
     [U("k"), {"role": "assistant", "tool_calls": [call("g", {"b": 1, "A": 2, "C": 3, "a": 4,
                                                              "_u": 5, "B2": {"y": 1, "X": 2}},
                                                          "g1")]}, tool_msg("ok", "g1")], None,
     {"add_generation_prompt": False}),
    ("tool_call_numbers",
     [U("n"), {"role": "assistant", "tool_calls": [call("num", {"a": 0.1, "b": 1e-05, "c": 2.5e+20,
                                                                "d": -7, "e": 123456789, "f": 0.000123,
                                                                "g": 1.0e-7, "h": 3.14159265358979,
                                                                "i": -0.5, "j": 1e16 + 0.5 * 4},
                                                          "n1")]}, tool_msg("ok", "n1")], None, {}),
    ("openai_content_and_calls_then_tool",
     [U("Weather?"), {"role": "assistant", "content": "Checking.",
                      "tool_calls": [call("get_weather", {"city": "Oslo"}, "c")]},
      tool_msg("cold", "c")], [WEATHER], {}),
    ("user_image", [{"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": "Describe this image."}]}],
     None, {}),
    ("user_media_parts", [{"role": "user", "content": [
        {"type": "text", "text": "  Compare  "}, {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "audio"}, {"type": "input_audio"}, {"type": "video"}, {"type": "unknown"},
        {"type": "text", "text": "\nthese\n"}]}], None, {}),
    ("system_parts", [{"role": "system", "content": [{"type": "text", "text": " Part one. "},
                                                     {"type": "text", "text": "Part two."}]},
                      U("Hi")], None, {}),
    ("assistant_strips_thinking",
     [U("Hi"), A("<|channel>thought\nhidden<channel|>Visible answer.  "), U("Again")], None, {}),
    ("assistant_parts_strip",
     [U("Hi"), {"role": "assistant", "content": [
         {"type": "text", "text": "  a<|channel>x<channel|>b "}, {"type": "image"}]}], None,
     {"add_generation_prompt": False}),
    ("consecutive_assistants", [U("Hi"), A("Part 1."), A("Part 2."), U("ok")], None, {}),
    ("assistant_after_tool_continues",
     [U("Weather?"), {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Rome"}, "c")]},
      tool_msg("warm", "c"), A("Warm in Rome."), A("Anything else?")], [WEATHER],
     {"add_generation_prompt": False}),
    ("later_system", [U("Hi"), A("Hello"), S("New rules apply."), U("ok")], None, {}),
    ("later_developer", [S("Sys"), U("Hi"), {"role": "developer", "content": " Dev note "}, U("ok")],
     None, {"enable_thinking": True}),
    ("no_messages", [], None, {}),
    ("no_messages_thinking_tools", [], [WEATHER], {"enable_thinking": True}),
    ("only_system", [S("Alone.")], None, {}),
    ("preserve_thinking_tool_calls",
     [U("Weather?"),
      {"role": "assistant", "reasoning_content": "Use tool.",
       "tool_calls": [call("get_weather", {"city": "Nice"}, "c")]},
      tool_msg("sunny", "c"), A("Sunny."), U("And tomorrow?")], [WEATHER],
     {"enable_thinking": True, "preserve_thinking": True}),
    ("no_preserve_thinking_tool_calls",
     [U("Weather?"),
      {"role": "assistant", "reasoning_content": "Use tool.",
       "tool_calls": [call("get_weather", {"city": "Nice"}, "c")]},
      tool_msg("sunny", "c"), A("Sunny."), U("And tomorrow?")], [WEATHER],
     {"enable_thinking": True}),
    ("no_generation_prompt", [U("Hi"), A("Hello")], None, {"add_generation_prompt": False}),
    ("unicode_whitespace_trim", [S("\u3000\u00a0 system \n\t"), U("\u2003\u4f60\u597d \U0001f60a\u2028"),
                                 A(" \u00a0caf\u00e9 \u200b")], None, {}),
    ("unicode_content", [U("\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002\U0001f468\u200d\U0001f469\u200d\U0001f467"),
                         A("\u00e9\u00e8 <|\"|> \u03b1\u03b2")], None, {"enable_thinking": True}),
    ("description_special_chars", [U("go")], [{"type": "function", "function": {
        "name": "weird_name-1", "description": "Says \"hi\" {and} <b>bold</b>, 'quotes'\nnewline",
        "parameters": {"type": "object", "properties": {
            "p": {"type": "string", "description": "x:y,z"}}}}}], {}),
    ("tool_result_openai_thinking_then_gen",
     [S("S"), U("q"), {"role": "assistant", "tool_calls": [call("get_weather", {"city": "A"}, "1")]},
      tool_msg("r", "1")], [WEATHER], {"enable_thinking": True}),
    ("multiple_tool_rounds",
     [U("q"), {"role": "assistant", "tool_calls": [call("get_weather", {"city": "A"}, "1")]},
      tool_msg("r1", "1"),
      {"role": "assistant", "tool_calls": [call("get_weather", {"city": "B"}, "2")]},
      tool_msg("r2", "2")], [WEATHER], {}),
    ("user_empty_content", [U(""), A(""), U("   ")], None, {}),
    # --- issue 20, renderer fidelity: null / missing values in tool messages and tool responses
    ("tool_content_missing",
     [U("q"), {"role": "assistant", "tool_calls": [call("f", {}, "x")]}, {"role": "tool", "tool_call_id": "x"}],
     None, {"add_generation_prompt": False}),
    ("tool_name_number_error",
     [U("q"), {"role": "assistant", "tool_calls": [call("f", {}, "x")]}, tool_msg("c", "y", name=5)], None, {}),
    ("tool_name_number_overridden_by_id",
     [U("q"), {"role": "assistant", "tool_calls": [call("f", {}, "x")]}, tool_msg("c", "x", name=5)], None, {}),
    ("tool_name_null_falls_back",
     [U("q"), {"role": "assistant", "tool_calls": [call("f", {}, "x")]}, tool_msg("c", "y", name=None)], None, {}),
    ("tool_part_text_null_error",
     [U("q"), {"role": "assistant", "tool_calls": [call("f", {}, "x")]},
      tool_msg([{"type": "text", "text": None}], "x")], None, {}),
    ("tool_part_text_missing_error",
     [U("q"), {"role": "assistant", "tool_calls": [call("f", {}, "x")]}, tool_msg([{"type": "text"}], "x")],
     None, {}),
    ("tool_part_text_number_error",
     [U("q"), {"role": "assistant", "tool_calls": [call("f", {}, "x")]},
      tool_msg([{"type": "text", "text": 5}], "x")], None, {}),
    ("tool_responses_missing_and_null",
     [U("q"), {"role": "assistant", "tool_responses": [{"name": "f"}, {"name": "g", "response": None},
                                                        {"name": None, "response": {"a": None, "b": {"c": None}}},
                                                        None, "ab"]}], None, {}),
    ("tool_responses_name_number_error",
     [U("q"), {"role": "assistant", "tool_responses": [{"name": 5, "response": 1}]}], None, {}),
    ("tool_responses_mapping",
     [U("q"), {"role": "assistant", "tool_responses": {"a": 1, "b": 2}, "content": "done"}], None, {}),
    ("tool_responses_string",
     [U("q"), {"role": "assistant", "tool_responses": "h\u00e9"}], None, {"enable_thinking": True}),
    ("tool_responses_number_error",
     [U("q"), {"role": "assistant", "tool_responses": 5}], None, {}),
    ("reasoning_number_error",
     [U("q"), {"role": "assistant", "content": "a", "reasoning": 5}], None, {"add_generation_prompt": False}),
    ("reasoning_list_before_last_user_ignored",
     [U("q"), {"role": "assistant", "content": "a", "reasoning_content": ["x"]}, U("again")], None, {}),
    ("system_content_mapping",
     [{"role": "system", "content": {"a": {"text": "hi"}, "b": 1}}, U("q")], None, {}),
    # text: null parts: str(None) where the template trims, an error where it concatenates
    ("text_null_parts",
     [{"role": "system", "content": [{"type": "text", "text": None}]},
      {"role": "user", "content": [{"type": "text", "text": None}, {"type": "text", "text": 5},
                                   {"type": "text", "text": [1, "a"]}, {"type": "text"}]}], None, {}),
    # negative zero and duplicate keys: raw JSON text, parsed by json.loads (last key wins)
    ("negative_zero",
     '[{"role":"user","content":"n"},{"role":"assistant","tool_calls":[{"id":"z","function":{"name":"f",'
     '"arguments":{"a":-0,"b":[-0,0],"c":{"d":-0}}}}]},{"role":"tool","tool_call_id":"z","content":"-0"},'
     '{"role":"assistant","tool_responses":[{"name":"r","response":{"r":-0}},{"response":-0}]}]',
     None, {}),
    ("duplicate_keys",
     '[{"role":"system","content":"first","content":"last"},'
     '{"role":"user","role":"user","content":[{"type":"text","text":"x","text":"y"}]},'
     '{"role":"assistant","tool_calls":[{"id":"d","function":{"name":"f","arguments":'
     '{"b":1,"a":2,"b":3,"B":{"k":1,"k":[1,2]}}}}],"tool_calls":[{"id":"d","function":{"name":"g",'
     '"arguments":{"z":1,"z":null}}}]},'
     '{"role":"tool","tool_call_id":"d","content":[{"type":"text","text":"a"},{"type":"text","text":"b","text":"c"}]},'
     '{"role":"assistant","tool_responses":[{"name":"h","response":{"x":1,"y":2,"x":{"q":1,"q":2}}}]}]',
     '[{"type":"function","function":{"name":"f","name":"g","description":"d","parameters":{"type":"object",'
     '"properties":{"p":{"type":"string","type":"integer"},"a":{"type":"object","properties":{"s":{"type":"string"}},'
     '"properties":{"t":{"type":"number"}}}},"required":["x"],"required":["p"]}}}]', {}),
    # schema fields of the wrong type: rendered as jinja2 does, refused where it raises
    ("schema_required_string",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "properties": {"ab": {"type": "string"}, "o": {"type": "object", "required": "xy\u00e9"},
                                         "l": {"type": "array", "items": {"type": "object", "required": "mn"}}},
         "required": "a\U0001f60ab"}}}], {}),
    ("schema_required_mapping",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "required": {"y": 1, "x": 2}}}}], {}),
    ("schema_required_number_error",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "required": 5}}}], {}),
    ("schema_nested_required_bool_error",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "properties": {"o": {"type": "object", "required": True}}}}}], {}),
    ("schema_items_required_number_error",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "properties": {"l": {"type": "array", "items": {"required": 0}}}}}}], {}),
    ("schema_properties_list_error",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "properties": [{"a": {"type": "string"}}]}}}], {}),
    ("schema_properties_string_error",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "properties": "abc"}}}], {}),
    ("schema_nested_properties_list",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "properties": {
             "o": {"type": "object", "properties": [1], "k": {"type": "string"}},
             "l": {"type": "array", "items": {"properties": [1], "required": ["a"]}},
             "v": "string", "w": 5, "x": None}}}}], {}),
    ("schema_items_type_mapping_and_numbers",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "properties": {
             "l": {"type": "array", "items": {"type": {"b": 1, "a": 2}}},
             "m": {"type": "array", "items": {"type": [5, None, "x", True]}}}}}}], {}),
    ("schema_items_type_number_error",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
         "type": "object", "properties": {"l": {"type": "array", "items": {"type": 5}}}}}}], {}),
    ("schema_odd_shapes",
     [U("q")], [{"type": "function", "function": {"name": "f", "description": None, "parameters": "abc"}},
                {"type": "function", "function": {"name": "g", "parameters": [1], "response": "x"}},
                {"type": "function", "function": "my function"},
                {"type": "function", "function": ["function"]},
                {"type": "function", "function": {"name": "h", "parameters": {"type": 5, "properties": {
                    "a": {"type": 7, "description": 5}, "e": {"type": "string", "enum": "xy"}}}}}], {}),
    ("schema_function_string_response_error",
     [U("q")], [{"type": "function", "function": "my response"}], {}),
    ("schema_function_list_response_error",
     [U("q")], [{"type": "function", "function": ["response"]}], {}),
    ("schema_function_null_error",
     [U("q")], [{"type": "function", "function": None}], {}),
    # continue_final_message (transformers' apply_chat_template, continue_chat below)
    ("continue_assistant",
     [U("tell me a common saying"), A("Here is a common saying about apple. An apple a day, keeps")], None,
     {"add_generation_prompt": False, "continue_final_message": True}),
    ("continue_assistant_trailing_space", [U("Hi"), A("  Hello there, ")], None,
     {"add_generation_prompt": False, "continue_final_message": True}),
    ("continue_assistant_thinking", [S("Be brief."), U("Hi"), A("Well")], None,
     {"add_generation_prompt": False, "continue_final_message": True, "enable_thinking": True}),
    ("continue_assistant_reasoning", [U("Hi"), dict(A("So"), reasoning_content="think")], None,
     {"add_generation_prompt": False, "continue_final_message": True}),
    ("continue_assistant_parts",
     [U("Hi"), {"role": "assistant", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}],
     None, {"add_generation_prompt": False, "continue_final_message": True}),
    ("continue_user", [U("Complete this: the quick brown")], None,
     {"add_generation_prompt": False, "continue_final_message": True}),
    ("continue_after_tool_call",
     [U("Weather?"), dict(A(""), tool_calls=[call("get_weather", {"city": "Paris"}, "c1")]),
      tool_msg("sunny", "c1"), A("It is")], [WEATHER],
     {"add_generation_prompt": False, "continue_final_message": True}),
    ("continue_dropped_by_template_error", [U("Hi"), A("Well<|channel>x")], None,
     {"add_generation_prompt": False, "continue_final_message": True}),
]

CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


def continue_chat(tmpl, kw):
    """transformers' continue_final_message: the last text gets a marker, the chat is rendered,
    and the prompt ends where the marker starts (right-stripped when the template trimmed the
    space after it); a template that drops the marker raises."""
    messages = copy.deepcopy(kw["messages"])
    last = messages[-1]
    if isinstance(last["content"], list):
        part = next(p for p in reversed(last["content"]) if "text" in p)
        part["text"] += CONTINUE_TAG
    else:
        last["content"] += CONTINUE_TAG
    out = tmpl.render(**dict(kw, messages=messages))
    if CONTINUE_TAG.strip() not in out:
        raise jinja2.exceptions.TemplateError("the final message does not appear in the chat")
    at = out.rindex(CONTINUE_TAG.strip())
    return out[:at] if out[at:at + len(CONTINUE_TAG)] == CONTINUE_TAG else out[:at].rstrip()


# What the template raises besides TemplateError (str + None, iterating an int, dict.items of
# a list): all of them are refusals the C renderer must reproduce.
TEMPLATE_RAISES = (jinja2.exceptions.TemplateError, TypeError, AttributeError)


def render(env, tmpl, messages, tools, opts):
    kw = {"messages": messages, "bos_token": "<bos>",
          "add_generation_prompt": opts.get("add_generation_prompt", True)}
    for k in ("enable_thinking", "preserve_thinking"):
        if k in opts:
            kw[k] = opts[k]
    if tools is not None:
        kw["tools"] = tools
    if opts.get("continue_final_message"):
        return continue_chat(tmpl, kw)
    return tmpl.render(**kw)


def raises(env, tmpl, messages, tools, opts):
    try:
        render(env, tmpl, json.loads(messages) if isinstance(messages, str) else messages,
               json.loads(tools) if isinstance(tools, str) else tools, opts)
        return False
    except TEMPLATE_RAISES:
        return True


def golden(env, tmpl, name, messages, tools, opts):
    """One case of the golden file: the inputs, jinja2's output (or that it raised)."""
    full = {"add_generation_prompt": True, "enable_thinking": False, "preserve_thinking": False}
    full.update(opts)
    case = {"name": name, "options": full}
    # Raw JSON text (duplicate keys, -0) travels as text; the C test parses it with cJSON.
    case["messages_json" if isinstance(messages, str) else "messages"] = messages
    if tools is not None:
        case["tools_json" if isinstance(tools, str) else "tools"] = tools
    if isinstance(messages, str):
        messages = json.loads(messages)
    if isinstance(tools, str):
        tools = json.loads(tools)
    try:
        raw = render(env, tmpl, messages, tools, opts)
    except TEMPLATE_RAISES as e:
        case["error"] = True
        case["error_message"] = str(e)
        return case
    case["expected"] = raw
    fixed = raw
    if full["add_generation_prompt"]:
        base = render(env, tmpl, messages, tools, dict(opts, add_generation_prompt=False))
        if base.endswith("<turn|>\n"):
            fixed = base + "<|turn>model\n" + ("" if full["enable_thinking"] else "<|channel>thought\n<channel|>")
    case["expected_fixed"] = fixed
    return case


# ---- random cases: every shape the template takes, well-formed or not -------------------------
# Values stay inside the renderer's documented input limits (no floats that are integral, such
# as -0.0 or 1.0; ASCII where `upper` applies).

def random_cases(n, seed=20):
    R = random.Random(seed)

    def scalar():
        return R.choice([None, True, False, 0, 5, 1.5, "", "x", " a ", "<|channel>t<channel|>v"])

    def val(d=0):
        k = R.random()
        if d > 2 or k < 0.5:
            return scalar()
        if k < 0.75:
            return [val(d + 1) for _ in range(R.randint(0, 3))]
        keys = ["a", "B", "text", "type", "name", "response", "id", "content", "required", "properties",
                "items", "description", "enum", "nullable"]
        return {R.choice(keys): val(d + 1) for _ in range(R.randint(0, 3))}

    def part():
        p = {"type": R.choice(["text", "image", "video", "audio", "x"])}
        if R.random() < 0.8:
            p["text"] = R.choice(["hi", None, 5, "  t ", ["l"], "<|channel>a<channel|>b"])
        return p if R.random() < 0.95 else val()

    def content():
        k = R.random()
        if k < 0.5:
            return R.choice(["hello", " x ", "", "a<|channel>t<channel|>b"])
        if k < 0.8:
            return [part() for _ in range(R.randint(0, 3))]
        return val()

    def message():
        role = R.choice(["user", "assistant", "assistant", "tool", "system", "developer"])
        m = {"role": role}
        if R.random() < 0.9:
            m["content"] = content()
        if role == "assistant":
            if R.random() < 0.5:
                m["tool_calls"] = [{"id": R.choice(["a", "b", None, 1]), "function": {
                    "name": R.choice(["f", "g"]), "arguments": R.choice([{}, {"x": val()}, None])}}
                    for _ in range(R.randint(1, 2))]
            if R.random() < 0.2:
                m["tool_responses"] = R.choice([[{"name": R.choice(["f", None, 5, ""]), "response": val()}], val()])
            if R.random() < 0.3:
                m[R.choice(["reasoning", "reasoning_content"])] = R.choice(["why", None, "", 5])
        if role == "tool":
            if R.random() < 0.7:
                m["tool_call_id"] = R.choice(["a", "b", None, 1])
            if R.random() < 0.3:
                m["name"] = R.choice(["n", None, 5, ""])
        return m

    def schema(d=0):
        s = {}
        for k in R.sample(["type", "description", "properties", "required", "items", "enum", "nullable", "x"],
                          R.randint(0, 4)):
            if k == "type":
                s[k] = R.choice(["string", "object", "array", "integer", ["string", "null"], 5, None])
            elif k == "properties" and d < 2:
                s[k] = R.choice([{"p": schema(d + 1), "q": schema(d + 1)}, [], "s", {}])
            elif k == "items" and d < 2:
                s[k] = R.choice([schema(d + 1), {"type": R.choice([{"a": 1}, ["x"], "y"]),
                                                 "required": R.choice([["a"], "ab"])}, [1]])
            elif k == "required":
                s[k] = R.choice([["p"], "pq", [], {"p": 1}])
            else:
                s[k] = val()
        return s

    def tools():
        if R.random() < 0.5:
            return None
        return [{"type": "function", "function": {
            "name": R.choice(["f", "g"]), "description": R.choice(["d", None, 5]),
            "parameters": R.choice([schema(), {"type": "object", "properties": {"a": schema(), "b": schema()},
                                               "required": R.choice([["a"], "ab", 3])}])}}
            for _ in range(R.randint(1, 2))]

    for i in range(n):
        msgs = [message() for _ in range(R.randint(1, 5))]
        opts = {"add_generation_prompt": R.random() < 0.5, "enable_thinking": R.random() < 0.3,
                "preserve_thinking": R.random() < 0.2}
        yield "random_%d" % i, msgs, tools(), opts


def write(path, cases, what):
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/text/make_chat_cases.py", "jinja2_version": jinja2.__version__,
                   "template": "shared/gemma4/chat_template.jinja (2026-07-09)", "cases": cases}, f,
                  ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    n_fix = sum(1 for c in cases if "expected" in c and c["expected"] != c["expected_fixed"])
    print("%d %s (%d raise, %d differ by the generation-prompt fix)"
          % (len(cases), what, sum(1 for c in cases if c.get("error")), n_fix))


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env.globals["raise_exception"] = raise_exception
    with open(TEMPLATE, encoding="utf-8") as f:
        tmpl = env.from_string(f.read())
    out = []
    names = set()
    for name, messages, tools, opts in CASES:
        assert name not in names, name
        names.add(name)
        assert not name.endswith("_error") or raises(env, tmpl, messages, tools, opts), name
        out.append(golden(env, tmpl, name, messages, tools, opts))
    path = os.path.join(HERE, "data", "chat_cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/text/make_chat_cases.py", "jinja2_version": jinja2.__version__,
                   "template": "shared/gemma4/chat_template.jinja (2026-07-09)", "cases": out}, f,
                  ensure_ascii=False, indent=1)
        f.write("\n")
    n_fix = sum(1 for c in out if "expected" in c and c["expected"] != c["expected_fixed"])
    print("%d chat cases (%d raise, %d differ by the generation-prompt fix)"
          % (len(out), sum(1 for c in out if c.get("error")), n_fix))
    rnd = [golden(env, tmpl, *c) for c in random_cases(RANDOM_CASES)]
    write(os.path.join(HERE, "data", "chat_random_cases.json"), rnd, "random chat cases")


if __name__ == "__main__":
    main()
