"""Run the live scoring service (BentoML) on http://HOST:PORT.

``callintent serve`` checks the config and that the registry holds the model, then replaces
itself with ``python -m bentoml serve serving.service:CallIntentService`` — the same process
tests start and the Docker image runs — passing the config through the environment
(``CALLINTENT_SERVE_CONFIG``, ``CALLINTENT_SERVE_OVERRIDES``, ``CALLINTENT_REGISTRY``; see
``serving/config.py``). API keys: ``CALLINTENT_API_KEYS`` / ``CALLINTENT_API_KEYS_FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

SERVICE = "serving.service:CallIntentService"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s; 0.0.0.0 in Docker)")
    parser.add_argument("--port", type=int, default=3000, help="port (default %(default)s)")
    parser.add_argument("--model", default=None, help="registry reference: production (default), candidate, v3, …")
    parser.add_argument("--config", default=None, metavar="FILE", help="service YAML (default serving/configs/serve.yaml)")
    parser.add_argument("--registry", default=None, metavar="DIR|URL",
                        help="registry root, a directory or s3://bucket/prefix (default $CALLINTENT_REGISTRY "
                             "or models/registry)")
    parser.add_argument("--registry-endpoint", default=None, metavar="URL",
                        help="S3-compatible endpoint of an s3:// registry (serve.yaml registry_endpoint_url; "
                             "default $AWS_ENDPOINT_URL, else AWS)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config key, e.g. --set limits.max_live_sessions=4 --set asr.device=cuda")
    parser.add_argument("--dry-run", action="store_true", help="check everything and print the command; do not start")


def run(args: argparse.Namespace) -> int:
    from callintent.config import parse_override
    from callintent.errors import UserError
    from models.registry import RegistryError
    from serving.auth import load_api_keys
    from serving.config import ENV_OVERRIDES, config_env, load_serve_config

    overrides: dict[str, Any] = dict(parse_override(item) for item in args.overrides)
    if args.model:
        overrides["model"] = args.model
    if args.registry:
        overrides["registry"] = args.registry
    if args.registry_endpoint:
        overrides["registry_endpoint_url"] = args.registry_endpoint
    config = load_serve_config(args.config, overrides=overrides)
    registry = config.open_registry()
    try:
        model_dir = registry.resolve(config.model)
    except RegistryError as e:
        raise UserError(f"no model {config.model!r} in the registry at {registry.root} ({e}); "
                        "`make serve` or `callintent bootstrap` builds and promotes the default model") from None
    keys = load_api_keys(config.api_keys_file or None)  # a bad key file fails here, not in the worker
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be 1..65535, got {args.port}")

    env = dict(os.environ)
    inherited = json.loads(os.environ.get(ENV_OVERRIDES) or "{}")  # valid: load_serve_config read it
    env.update(config_env(args.config, {**inherited, **{k: v for k, v in overrides.items() if k != "registry"}}))
    env["CALLINTENT_REGISTRY"] = str(registry.root)  # absolute: the server runs from another directory
    working_dir = Path(__file__).resolve().parents[1]  # where the `serving` package is importable from
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", args.host, "--port", str(args.port),
               "--working-dir", str(working_dir)]
    print(f"callintent serve: model {config.model} -> {model_dir} ({config.variant}), "
          f"{'API keys on (' + str(len(keys)) + ')' if keys.enabled else 'no API keys (open)'}, "
          f"http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    if args.dry_run:
        print(" ".join(command))
        return 0
    os.execve(sys.executable, command, env)
    return 0  # not reached

