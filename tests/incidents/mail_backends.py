"""A mail backend that fails the way a broken SMTP relay does (for the notification tests)."""

from smtplib import SMTPRecipientsRefused

from django.core.mail.backends.base import BaseEmailBackend


class FailingBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise SMTPRecipientsRefused({"ops@example.com": (550, b"relay access denied")})
