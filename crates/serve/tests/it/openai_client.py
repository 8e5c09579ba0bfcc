"""Drives the server with the official `openai` Python client, as a user's program would.

    python3 openai_client.py BASE_URL API_KEY BASE_MODEL RUN_MODEL ALIAS SYSTEM

Prints one JSON object with what each call returned (the Rust test checks it). Errors the
server must send are caught as the client's typed exceptions.
"""
import json
import sys

import openai
from openai import OpenAI


def main():
    url, key, base, run, alias, system = sys.argv[1:7]
    c = OpenAI(base_url=url, api_key=key, max_retries=0, timeout=300)
    out = {"models": sorted(m.id for m in c.models.list())}
    q = [{"role": "user", "content": "What is a mutex?"}]

    def chat(model, messages, **kw):
        r = c.chat.completions.create(model=model, messages=messages, max_tokens=16, **kw)
        ch = r.choices[0]
        return {"text": ch.message.content, "finish": ch.finish_reason, "usage": r.usage.model_dump()}

    out["base"] = chat(base, q, temperature=0)
    out["run"] = chat(run, q, temperature=0)
    # The alias sets temperature 0 and a system message.
    out["alias"] = chat(alias, q)
    out["run_with_system"] = chat(run, [{"role": "system", "content": system}] + q, temperature=0)

    stream = c.chat.completions.create(
        model=run, messages=q, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    text, pieces, usage, finish, roles = "", 0, None, None, []
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                text += choice.delta.content
                pieces += 1
            if choice.finish_reason:
                finish = choice.finish_reason
    out["run_stream"] = {"text": text, "pieces": pieces, "usage": usage, "finish": finish, "roles": roles}

    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "legs": {"type": "integer"}},
        "required": ["name", "legs"],
        "additionalProperties": False,
    }
    r = c.chat.completions.create(
        model=base,
        messages=[{"role": "user", "content": "Describe a cat as JSON."}],
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "animal", "schema": schema}},
    )
    out["json_schema"] = {"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason}
    r = c.chat.completions.create(
        model=base, messages=[{"role": "user", "content": "Reply with a JSON object with the keys city and country for Paris."}], max_tokens=200,
        temperature=0, response_format={"type": "json_object"},
    )
    out["json_object"] = {"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason}

    r = c.chat.completions.create(
        model=base, messages=q, max_tokens=4, n=2, temperature=0, logprobs=True, top_logprobs=2,
    )
    out["n"] = [
        {
            "text": ch.message.content,
            "tokens": [t.token for t in ch.logprobs.content],
            "logprobs": [t.logprob for t in ch.logprobs.content],
            "top": [len(t.top_logprobs) for t in ch.logprobs.content],
        }
        for ch in r.choices
    ]
    out["n_usage"] = r.usage.model_dump()

    r = c.completions.create(model=base, prompt="The capital of France is", max_tokens=4, temperature=0)
    out["completion"] = {"text": r.choices[0].text, "usage": r.usage.model_dump()}
    text = ""
    for chunk in c.completions.create(
        model=base, prompt="The capital of France is", max_tokens=4, temperature=0, stream=True
    ):
        text += chunk.choices[0].text if chunk.choices else ""
    out["completion_stream"] = text

    errors = {}
    try:
        c.chat.completions.create(model="no-such-model", messages=q)
    except openai.NotFoundError as e:
        errors["unknown_model"] = {"status": e.status_code, "code": e.code, "param": e.param}
    try:
        c.chat.completions.create(model=base, messages=q, temperature=5)
    except openai.BadRequestError as e:
        errors["temperature"] = {"status": e.status_code, "code": e.code, "param": e.param}
    out["errors"] = errors
    print(json.dumps(out))


if __name__ == "__main__":
    main()
