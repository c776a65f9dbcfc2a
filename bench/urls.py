from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from console.urls import urlpatterns as console_urlpatterns


@csrf_exempt
@login_not_required
def bare(request):
    """The baseline: the same server, middleware and process, no work at all."""
    return HttpResponse("ok")


urlpatterns = [path("bench/bare", bare), *console_urlpatterns]
