"""Write a development `.env` when there is none, so the README's commands work in a fresh clone.

    manage.py dev_env [--path FILE]

`make run` calls it. It never overwrites an existing file, and refuses outside DEBUG: a production
machine keeps its settings in the environment.
"""

import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

TEMPLATE = """# Written by `make run` for local development on this machine; not for production.
# Every setting is explained in .env.example.
DEBUG=true
SECRET_KEY={secret}
"""


class Command(BaseCommand):
    help = "Write a development .env (DEBUG on, a fresh SECRET_KEY) if none exists."

    def add_arguments(self, parser):
        parser.add_argument(
            "--path", default=str(settings.ENV_FILE), help="Where to write it (default: the .env read)."
        )

    def handle(self, *args, path: str, **options):
        if not settings.DEBUG:
            raise CommandError("dev_env is for development only (DEBUG is off).")
        target = Path(path)
        if target.exists():
            self.stdout.write(f"{target} exists; left as it is.")
            return
        target.write_text(TEMPLATE.format(secret=secrets.token_urlsafe(50)))
        target.chmod(0o600)
        self.stdout.write(f"Wrote {target} (DEBUG on, a new SECRET_KEY) so manage.py commands work here.")
