"""Alerts: rules the worker evaluates every minute (`rules`), the alerts they open, keep and
resolve, their notices by e-mail and Slack-compatible webhook, and silences (`services`), the page
and the `alerts` command."""
