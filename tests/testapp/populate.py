"""Fill the database with products and orders. Running it twice duplicates them (as in Sprint2)."""
import os
import random

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provesi.settings")
django.setup()

from pedidos.models import Pedido, Producto  # noqa: E402

productos = [Producto.objects.create(nombre=f"producto {n}", precio=random.randint(1, 500)) for n in range(10)]
for n in range(20):
    Pedido.objects.create(producto=random.choice(productos), cantidad=random.randint(1, 9))
print("populate: 10 productos, 20 pedidos")
