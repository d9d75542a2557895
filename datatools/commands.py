"""The data commands (``export``, ``import``, ``migrate``, ``import-legacy``) as the command line
runs them."""

from __future__ import annotations

import sys
from typing import Any

from datatools.command_support import EXIT_FAILURE, PARTIAL_SUFFIX, STDIO, CommandFailed
from datatools.export_command import export_command
from datatools.import_command import import_command
from datatools.import_legacy_command import import_legacy_command
from datatools.migrate_command import migrate_command
from server.settings import Settings


def run_data_command(settings: Settings, command: str, args: Any) -> int:
    """Runs a data command as parsed by the command line; the exit code."""
    try:
        if command == "import-legacy":
            return import_legacy_command(
                settings,
                args.path,
                mapping=args.map,
                dry_run=args.dry_run,
                concurrency=args.concurrency,
            )
        if command == "export":
            return export_command(settings, args.file, resume=args.resume, page_size=args.page_size)
        if command == "import":
            return import_command(
                settings,
                args.file,
                concurrency=args.concurrency,
                mark_verified=args.mark_verified,
            )
        return migrate_command(
            settings,
            dry_run=args.dry_run,
            page_size=args.page_size,
            mark_verified_before=args.mark_verified_before,
        )
    except CommandFailed as error:
        _fail(command, str(error))
        return error.code
    except KeyboardInterrupt:
        _fail(command, "interrupted" + _how_to_continue(command, args))
        return EXIT_FAILURE
    except Exception as error:
        _fail(command, f"{str(error) or type(error).__name__}{_how_to_continue(command, args)}")
        return EXIT_FAILURE


def _how_to_continue(command: str, args: Any) -> str:
    if command == "export" and args.file != STDIO:
        return f"; {args.file}{PARTIAL_SUFFIX} is kept: continue with export --resume {args.file}"
    if command in {"import", "migrate", "import-legacy"}:
        return f"; running {command} again continues safely"
    return ""


def _fail(command: str, message: str) -> None:
    print(f"user-service {command}: {message}", file=sys.stderr)
