"""`wa-support`: the one CLI entry point.

wa-support serve      start Ray, the actors and the gateway (embedded defaults if unset)
wa-support migrate    apply the database migrations
wa-support db seed    load demo conversations for a first look at the dashboard
wa-support db reset   delete all data (asks first; refused in production)
wa-support user create --email E --name N [--admin]   an operator (password asked)
wa-support reshard --shards N   move a Ray cluster's actors to N shards (gateways stopped)
wa-support loadtest   simulated customers against a service, with a report
wa-support chaos      break one part at a time under load; check exactly one reply each
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from config import ProductionConfigError, Settings, load_settings
from config.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wa-support", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--host", help="listen address (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT or 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes on the port, sharing one set of actors (default: 1)",
    )
    serve.add_argument(
        "--ray-address",
        help="join this Ray cluster (gateways on several hosts share its actors; "
        "default: RAY_ADDRESS, else a local Ray)",
    )
    # How a worker started by `serve --workers` runs; not for people.
    serve.add_argument("--attach", action="store_true", help=argparse.SUPPRESS)
    reshard = commands.add_parser(
        "reshard",
        help="move a Ray cluster's actors to N shards or to this code (gateways stopped first)",
    )
    reshard.add_argument("--shards", type=int, required=True, help="the new SHARD_COUNT")
    reshard.add_argument("--ray-address", help="the cluster (default: RAY_ADDRESS)")
    commands.add_parser("migrate", help="apply pending database migrations")
    db = commands.add_parser("db", help="demo data and reset")
    db_actions = db.add_subparsers(dest="action", required=True)
    db_actions.add_parser("seed", help="load demo conversations")
    reset = db_actions.add_parser("reset", help="delete all data (asks for confirmation)")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    user = commands.add_parser("user", help="operators")
    user_actions = user.add_subparsers(dest="action", required=True)
    create = user_actions.add_parser("create", help="create an operator (asks the password)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True, help="display name")
    create.add_argument("--admin", action="store_true", help="an admin (default: an agent)")
    loadtest = commands.add_parser("loadtest", help="simulated customers, with a report")
    from cli.loadtest import add_arguments

    add_arguments(loadtest)
    chaos = commands.add_parser("chaos", help="the chaos suite, under load")
    from cli.loadtest import add_chaos_arguments

    add_chaos_arguments(chaos)
    args = parser.parse_args(argv)
    if args.command == "loadtest":
        from cli.loadtest import run as run_loadtest

        return run_loadtest(args)
    if args.command == "chaos":
        from cli.loadtest import run_chaos

        return run_chaos(args)

    overrides = {
        k: v for k in ("host", "port", "ray_address") if (v := getattr(args, k, None)) is not None
    }
    settings = load_settings(**overrides)
    configure_logging(settings.log_level)
    from store.embedded_lease import EmbeddedUnavailable

    try:
        return _run(args, settings)
    except EmbeddedUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "db":
        from cli.db import run as run_db

        return run_db(settings, args.action, assume_yes=getattr(args, "yes", False))
    if args.command == "reshard":
        from cli.reshard import run as run_reshard

        try:
            return run_reshard(settings, args.shards)
        except ProductionConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.command == "user":
        from cli.users import create as create_user
        from cli.users import read_password

        return create_user(
            settings, args.email, args.name, admin=args.admin, password=read_password()
        )
    try:
        settings.check_production()
    except ProductionConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.command == "migrate":
        from cli.serve import run_migrations

        applied = asyncio.run(run_migrations(settings))
        print("applied: " + (", ".join(applied) if applied else "nothing, already up to date"))
        return 0
    from cli.serve import serve as run_serve

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    return run_serve(settings, workers=args.workers, attach=args.attach)


if __name__ == "__main__":
    sys.exit(main())
