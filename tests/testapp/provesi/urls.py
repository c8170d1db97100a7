from django.http import HttpResponse
from django.urls import include, path


def health_check(request):
    return HttpResponse("ok")


urlpatterns = [
    path("health-check/", health_check),
    path("despachos/", include("despachos.urls")),
]
