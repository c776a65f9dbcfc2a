from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        # A (re)started worker makes sure an event pump is running: after a crash, processing
        # resumes as soon as the cluster is back, not only at the next scheduled check.
        post_spawn.connect(_start_pump_on_spawn, dispatch_uid="integrations.start_pump")


def _start_pump_on_spawn(sender, proc_name, **kwargs):
    from integrations.tasks import start_pump

    try:
        start_pump()
    except Exception:  # never stop a worker from starting; the schedule retries
        import logging

        logging.getLogger(__name__).exception("could not enqueue the event pump")
