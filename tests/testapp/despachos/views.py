from django.db.models import Sum
from django.http import JsonResponse

from despachos.models import Despacho
from pedidos.models import Pedido, Producto


def reporte_productos_despachados(request):
    """Counts read from the database: proves the backend reaches PostgreSQL."""
    despachados = Despacho.objects.aggregate(total=Sum("pedido__cantidad"))["total"] or 0
    return JsonResponse({
        "productos": Producto.objects.count(),
        "pedidos": Pedido.objects.count(),
        "despachos": Despacho.objects.count(),
        "unidades_despachadas": despachados,
    })
