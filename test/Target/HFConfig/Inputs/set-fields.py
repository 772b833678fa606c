"""Prints a config.json with fields set or removed, for the refusal tests.

    set-fields.py BASE.json name=VALUE ... -name ...

VALUE is JSON (true, 0.1, null, [1], {"type": "yarn"}); anything that does
not parse as JSON is a string (hidden_act=gelu). -name removes the field.
"""
import json
import sys

config = json.load(open(sys.argv[1]))
for arg in sys.argv[2:]:
    if arg.startswith("-"):
        config.pop(arg[1:], None)
        continue
    name, _, value = arg.partition("=")
    try:
        config[name] = json.loads(value)
    except ValueError:
        config[name] = value
json.dump(config, sys.stdout, indent=2)
sys.stdout.write("\n")
