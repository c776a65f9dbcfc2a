"""Follow-ups and notification lists (placeholder; being written)."""


def follow_ups(request):
    raise NotImplementedError


def notification_lists(request):
    raise NotImplementedError
