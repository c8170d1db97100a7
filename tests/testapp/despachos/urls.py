from django.urls import path

from despachos.views import reporte_productos_despachados

urlpatterns = [path("reporte/", reporte_productos_despachados)]
