"""Dispatch every order once. Running it twice dispatches them again (duplicates, as in Sprint2)."""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provesi.settings")
django.setup()

from despachos.models import Despacho  # noqa: E402
from pedidos.models import Pedido  # noqa: E402

pedidos = list(Pedido.objects.all())
for pedido in pedidos:
    Despacho.objects.create(pedido=pedido, destino=f"bodega {pedido.pk % 3}")
print(f"populateDespachos: {len(pedidos)} despachos")
