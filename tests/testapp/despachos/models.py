from django.db import models

from pedidos.models import Pedido


class Despacho(models.Model):
    pedido = models.ForeignKey(Pedido, on_delete=models.CASCADE)
    destino = models.CharField(max_length=200)
    despachado = models.DateTimeField(auto_now_add=True)
