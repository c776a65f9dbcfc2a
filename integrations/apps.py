from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        # Every qcluster worker process runs an event pump in a thread (integrations.tasks), so
        # processing starts with the cluster and scales with its workers.
        post_spawn.connect(_start_pump_on_spawn, dispatch_uid="integrations.start_pump")

        from django.core.signals import request_started

        from integrations.inbound.storage import drop_receiver_limits

        request_started.connect(drop_receiver_limits, dispatch_uid="integrations.drop_receiver_limits")


def _start_pump_on_spawn(sender, proc_name, **kwargs):
    from django.conf import settings

    from integrations.tasks import start_worker_pump

    # With Q_CLUSTER "sync" (tests), django-q2 runs a task in the caller's own process and still
    # sends post_spawn: that process (a test, a web worker) is no qcluster worker to pump in.
    if settings.Q_CLUSTER.get("sync"):
        return

    try:
        start_worker_pump()
    except Exception:  # never stop a worker from starting; the schedule retries
        import logging

        logging.getLogger(__name__).exception("could not start the event pump")
