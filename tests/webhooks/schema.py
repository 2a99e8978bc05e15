"""Validates JSON documents against a schema of docs/openapi.json with the independent
`jsonschema` package (JSON Schema 2020-12, the dialect of OpenAPI 3.1).

stdin: {"schema": "<components/schemas name>", "documents": [...]}
stdout: {"errors": [["<document index>: <path>: <message>", ...]]}
"""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OPENAPI = pathlib.Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def main():
    request = json.load(sys.stdin)
    document = json.loads(OPENAPI.read_text())
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{request['schema']}"}, registry=registry)
    errors = []
    for i, instance in enumerate(request["documents"]):
        for e in validator.iter_errors(instance):
            # For anyOf, the closest alternative's own error says what is wrong.
            e = best_match(e.context) if e.context else e
            path = "/".join(str(p) for p in e.absolute_path)
            errors.append(f"{i}: {path}: {e.message[:200]}")
    json.dump({"errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
