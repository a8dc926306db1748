"""List, show, promote and roll back model versions in the registry.

Examples::

    callintent models list
    callintent models show candidate
    callintent models promote intent/v3 --to production
    callintent models promote v3 --to production --force --reason "first model, no baseline yet"
    callintent models rollback
    callintent models path production        # prints the directory (for scripts)
    callintent models --registry s3://models/callintent list      # a shared registry on S3
    callintent models --registry s3://models/callintent --registry-endpoint http://127.0.0.1:9000 list

An ``s3://`` registry reads credentials from the standard AWS variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``…) and an S3-compatible endpoint from
``--registry-endpoint`` or ``$AWS_ENDPOINT_URL``; ``path`` downloads the version into the cache
(``$CALLINTENT_REGISTRY_CACHE`` or ``~/.cache/callintent/registry``) and prints that directory.
"""

from __future__ import annotations

import argparse

from models.registry import ALIASES, DEFAULT_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    registry_help = "registry root, a directory or s3://bucket/prefix (default: $CALLINTENT_REGISTRY or models/registry)"
    endpoint_help = "S3-compatible endpoint URL for an s3:// registry (default: $AWS_ENDPOINT_URL, else AWS)"
    parser.add_argument("--registry", default=None, metavar="DIR|URL", help=registry_help)
    parser.add_argument("--registry-endpoint", default=None, metavar="URL", help=endpoint_help)
    # Also accepted after the subcommand; SUPPRESS keeps an absent one from hiding the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", default=argparse.SUPPRESS, metavar="DIR|URL", help=registry_help)
    common.add_argument("--registry-endpoint", default=argparse.SUPPRESS, metavar="URL", help=endpoint_help)
    sub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("list", parents=[common],
                       help="versions with their aliases, validation macro-F1 and gate status")
    p.add_argument("--name", default=DEFAULT_NAME, help="model name (default: %(default)s)")
    p.set_defaults(models_run=_list)

    p = sub.add_parser("show", parents=[common], help="metadata, metrics, gate and model card of one version")
    p.add_argument("ref", help="v3, intent/v3, production, intent:candidate or an artifact directory")
    p.add_argument("--name", default=DEFAULT_NAME, help="model name for refs that omit it")
    p.set_defaults(models_run=_show)

    p = sub.add_parser("promote", parents=[common], help="point an alias at a version (gated by evaluation)")
    p.add_argument("ref", help="the version to promote (v3, intent/v3, candidate…)")
    p.add_argument("--to", dest="alias", choices=ALIASES, default="production",
                   help="alias (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="promote although the gate failed or never ran")
    p.add_argument("--reason", default="", help="why (required with --force; kept in the history)")
    p.add_argument("--name", default=DEFAULT_NAME, help="model name for refs that omit it")
    p.set_defaults(models_run=_promote)

    p = sub.add_parser("rollback", parents=[common],
                       help="move an alias back to the version it pointed to before")
    p.add_argument("--alias", choices=ALIASES, default="production", help="alias (default: %(default)s)")
    p.add_argument("--name", default=DEFAULT_NAME, help="model name (default: %(default)s)")
    p.set_defaults(models_run=_rollback)

    p = sub.add_parser("path", parents=[common], help="print the directory of a version (for scripts)")
    p.add_argument("ref", help="v3, intent/v3, production, intent:candidate or an artifact directory")
    p.add_argument("--name", default=DEFAULT_NAME, help="model name for refs that omit it")
    p.set_defaults(models_run=_path)

    p = sub.add_parser("register", parents=[common],
                       help="copy an exported artifact in as the next version (sets candidate)")
    p.add_argument("artifact_dir", help="an export output directory")
    p.add_argument("--name", default=DEFAULT_NAME, help="model name (default: %(default)s)")
    p.set_defaults(models_run=_register)

    p = sub.add_parser("history", parents=[common],
                       help="every register/promote/rollback with time, user and reason")
    p.add_argument("--name", default=DEFAULT_NAME, help="model name (default: %(default)s)")
    p.set_defaults(models_run=_history)


def run(args: argparse.Namespace) -> int:
    return int(args.models_run(args) or 0)


def _registry(args: argparse.Namespace):
    from models.registry import Registry

    return Registry(args.registry, endpoint_url=args.registry_endpoint)


def _list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    infos = registry.versions(args.name)
    if not infos:
        print(f"no versions of {args.name!r} in {registry.store.location}")
        return 0
    rows = [("VERSION", "CREATED", "ALIASES", "VAL MACRO-F1", "GATE")]
    for info in infos:
        f1 = info.val_macro_f1
        rows.append((info.ref, info.created_at[:19].replace("T", " "), ",".join(info.aliases) or "-",
                     "-" if f1 is None else f"{f1:.3f}", info.gate.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _show(args: argparse.Namespace) -> int:
    from models.artifact import MODEL_CARD

    registry = _registry(args)
    info = registry.show(args.ref, name=args.name)
    meta = info.meta
    print(f"{info.ref}  {info.location}")
    print(f"  created:        {info.created_at}")
    print(f"  aliases:        {', '.join(info.aliases) or '-'}")
    print(f"  base model:     {meta.base_model or '-'}")
    print(f"  max length:     {meta.max_length} tokens")
    print(f"  temperature:    {meta.temperature:.4g}")
    print(f"  buying thresh.: {meta.buying_threshold:.3f}")
    print(f"  signal thresh.: {', '.join(f'{k}={v:.2f}' for k, v in meta.signal_thresholds.items()) or '-'}")
    print(f"  data:           {meta.data_fingerprint or '-'}")
    gate = info.gate
    against = f" (against {gate.compared_to})" if gate.compared_to else ""
    print(f"  gate:           {gate.summary}{against}")
    for reason in gate.reasons:
        print(f"    - {reason}")
    if info.metrics:
        print("  metrics:")
        for key, value in info.metrics.items():
            print(f"    {key}: {value:.4g}")
    print(f"  model card:     {registry.file_location(info, MODEL_CARD) or '(none)'}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    registry = _registry(args)
    info = registry.show(args.ref, name=args.name)  # pin "candidate" etc. to a version before it moves
    registry.promote(info.ref, args.alias, force=args.force, reason=args.reason)
    print(f"{info.name}:{args.alias} -> {info.ref}{' (forced)' if args.force else ''}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    ref = _registry(args).rollback(args.alias, args.name)
    print(f"{args.name}:{args.alias} -> {ref}")
    return 0


def _path(args: argparse.Namespace) -> int:
    print(_registry(args).resolve(args.ref, name=args.name))
    return 0


def _register(args: argparse.Namespace) -> int:
    print(_registry(args).register(args.artifact_dir, args.name))
    return 0


def _history(args: argparse.Namespace) -> int:
    for e in _registry(args).history(args.name):
        forced = " FORCED" if e.forced else ""
        reason = f"  ({e.reason})" if e.reason else ""
        moved = f"{e.alias}: {e.from_version or '-'} -> {e.to_version}"
        print(f"{e.time}  {e.user}  {e.action}{forced}  {moved}{reason}")
    return 0
