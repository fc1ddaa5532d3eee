"""``simulator login``, ``simulator logout`` and ``simulator whoami``.

Login asks for the user name and, masked, the password; tests them against the server (bounded by
MONGODB_TIMEOUT_MS); and only then remembers them: the password in the operating system's keyring
when one is available; without one, only the server and user name (the password is asked each
time, or read from DB_PASSWORD). Never in plain text, never in ``.env``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from pydantic import SecretStr

from simulator.domain.errors import AuthenticationError, ConfigurationError

LOGIN_EPILOG = """\
examples:
  simulator login --cluster cluster0.abcde.mongodb.net --user alice
  simulator login                     # uses DB_CLUSTER_URL / DB_USER when set, else asks
  simulator whoami
  simulator logout

The password is never echoed, logged or written to .env. See docs/identity.md.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    login = subparsers.add_parser(
        "login",
        help="log in to a shared MongoDB (Atlas) and remember the login on this computer",
        description=(
            "Ask for a MongoDB user name and password (masked), test them against the server, "
            "and remember them for later sessions (auto-login): the password goes to the "
            "operating system's keyring; without a keyring only the server and user name are "
            "remembered and the password is asked each time (or set DB_PASSWORD)."
        ),
        epilog=LOGIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    login.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="the server: an Atlas cluster host or host:port (default: DB_CLUSTER_URL, else asked)",
    )
    login.add_argument("--user", help="your MongoDB user name (default: DB_USER, else asked)")
    login.add_argument(
        "--no-remember",
        action="store_true",
        help="only test the login; do not remember it",
    )
    login.add_argument(
        "--attempts",
        type=int,
        default=3,
        metavar="N",
        help="how many times a rejected password may be typed again (default: 3)",
    )
    login.set_defaults(func=cmd_login, uses_database=False)

    logout = subparsers.add_parser(
        "logout",
        help="forget the remembered login (keyring entry and credentials file)",
    )
    logout.set_defaults(func=cmd_logout, uses_database=False)

    whoami = subparsers.add_parser(
        "whoami",
        help="show who you are (the owner of what you create) and which database you use",
    )
    whoami.set_defaults(func=cmd_whoami, uses_database=True)


def _ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except EOFError:
        return ""


def cmd_login(args: argparse.Namespace) -> int:
    from simulator.commands.common import command_root
    from simulator.credentials import Credentials
    from simulator.services.login import normalise_cluster, verify_login

    root = command_root()
    settings = root.settings
    if settings.mongodb_uri is not None:
        raise ConfigurationError(
            "MONGODB_URI is set (in the environment or .env), so the app connects with it and "
            "ignores remembered logins. Unset MONGODB_URI to log in with 'simulator login'.",
            title="Login not used",
        )
    cluster = (
        args.cluster
        or settings.db_cluster_url
        or _ask("MongoDB server (e.g. cluster0.abcde.mongodb.net or db.example.org:27017): ")
    )
    cluster = normalise_cluster(cluster)
    user = args.user or settings.db_user or _ask("User name: ")
    if not user:
        raise ConfigurationError("A user name is needed to log in.", title="No user name")
    attempts = max(1, args.attempts)
    for attempt in range(1, attempts + 1):
        password = getpass.getpass(f"Password for {user} at {cluster}: ")
        if not password:
            raise ConfigurationError("No password typed; nothing was changed.", title="Cancelled")
        try:
            who = asyncio.run(verify_login(settings, cluster, user, password))
        except AuthenticationError as exc:
            if attempt == attempts:
                raise
            print(f"{exc.title}: {exc} Try again ({attempts - attempt} left).", file=sys.stderr)
            continue
        break
    print(f"Logged in to {cluster} as {who}.")
    if args.no_remember:
        print("Not remembered (--no-remember).")
        return 0
    where = root.credentials.save(Credentials(cluster, user, SecretStr(password)))
    if where == "keyring":
        print("Remembered: the password is in your operating system's keyring.")
        print("Later sessions log in by themselves; 'simulator logout' forgets the login.")
    else:
        print(
            "No keyring on this computer, so the password is not kept (never in plain text): "
            "the server and user name are remembered, and later sessions ask for the password, "
            "or read DB_PASSWORD from your environment or .env. 'simulator logout' forgets it."
        )
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from simulator.commands.common import command_root

    store = command_root().credentials
    if store.forget():
        print(f"Forgot the remembered login ({store.path} and any keyring entry).")
    else:
        print("No login was remembered.")
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    return asyncio.run(_whoami())


async def _whoami() -> int:
    from simulator.commands.common import command_root, open_session
    from simulator.services.root import Source

    root = command_root()
    async with open_session() as services:
        target = root.target()
        print(services.user)
        if target.source is Source.embedded:
            print("  on the embedded local server (you are your operating-system account)")
        elif target.source is Source.remembered:
            print(f"  on {target.host} (remembered login; 'simulator logout' forgets it)")
        else:
            print(f"  on {target.host} (configured in the environment or .env)")
        print(f"  database {root.settings.mongodb_db}")
    return 0
