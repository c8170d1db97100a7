"""files/backend/deploy_marker.py's destructive-migration check, with Django's real migration
operations judged on real project states (Django 4.2, as Sprint2 pins it): only what is known
to keep the data passes; the rest needs allow_destructive_migrations."""

import runpy

import django
import pytest
from django.conf import settings

from stack.settings import PROJECT_ROOT

if not settings.configured:
    settings.configure(INSTALLED_APPS=[], DATABASES={}, USE_TZ=True)
    django.setup()

from django.db import migrations, models
from django.db.migrations.state import ModelState, ProjectState

MARKER = runpy.run_path(str(PROJECT_ROOT / "files" / "backend" / "deploy_marker.py"))
losses = MARKER["losses"]


def shop() -> ProjectState:
    """The test app's pedidos, as its applied migrations leave it."""
    state = ProjectState()
    state.add_model(
        ModelState(
            "pedidos",
            "Producto",
            [
                ("id", models.BigAutoField(primary_key=True)),
                ("nombre", models.CharField(max_length=100)),
                ("precio", models.DecimalField(max_digits=10, decimal_places=2)),
                ("nota", models.TextField(null=True)),
                ("stock", models.IntegerField()),
            ],
        )
    )
    state.add_model(
        ModelState(
            "pedidos",
            "Pedido",
            [
                ("id", models.BigAutoField(primary_key=True)),
                ("producto", models.ForeignKey("pedidos.Producto", models.CASCADE)),
                ("cantidad", models.PositiveIntegerField()),
            ],
        )
    )
    return state


def refused(*operations, app="pedidos", migrated=("pedidos",), anything_migrated=True) -> list[str]:
    return losses([(app, "0002_x", list(operations))], shop(), set(migrated), anything_migrated)


KEEP = [
    migrations.CreateModel("Nuevo", [("id", models.BigAutoField(primary_key=True))]),
    migrations.AddField("producto", "codigo", models.CharField(max_length=10, null=True)),
    migrations.AddField("producto", "canal", models.CharField(max_length=10, default="web")),
    migrations.AddField("producto", "etiquetas", models.ManyToManyField("pedidos.Pedido")),
    migrations.AddIndex("producto", models.Index(fields=["nombre"], name="nombre_idx")),
    migrations.AddConstraint("producto", models.CheckConstraint(check=models.Q(stock__gte=0), name="stock_ok")),
    migrations.RemoveIndex("producto", "nombre_idx"),
    migrations.AlterModelOptions("producto", {"ordering": ["nombre"]}),
    migrations.AlterUniqueTogether("producto", {("nombre", "precio")}),
    migrations.AlterField("producto", "nombre", models.CharField(max_length=200)),
    migrations.AlterField("producto", "nombre", models.TextField()),
    migrations.AlterField("producto", "nombre", models.CharField(max_length=100, help_text="el nombre")),
    migrations.AlterField("producto", "stock", models.BigIntegerField()),
    migrations.AlterField("producto", "precio", models.DecimalField(max_digits=12, decimal_places=2)),
    migrations.AlterField("producto", "stock", models.IntegerField(null=True)),
    migrations.AlterField("pedido", "producto", models.ForeignKey("pedidos.Producto", models.PROTECT)),
    migrations.AlterField("pedido", "cantidad", models.BigIntegerField()),
]


@pytest.mark.parametrize("operation", KEEP, ids=lambda operation: operation.describe())
def test_operations_known_to_keep_the_data_pass(operation):
    assert refused(operation) == []


LOSE = [
    migrations.RemoveField("producto", "nombre"),
    migrations.DeleteModel("Pedido"),
    migrations.RenameField("producto", "nombre", "titulo"),
    migrations.RenameModel("Producto", "Articulo"),
    migrations.AlterModelTable("producto", "articulos"),
    migrations.AlterOrderWithRespectTo("pedido", "producto"),
    migrations.AddField("producto", "codigo", models.CharField(max_length=10)),  # NOT NULL, no default
    migrations.AlterField("producto", "nombre", models.CharField(max_length=20)),
    migrations.AlterField("producto", "nota", models.TextField(default="")),  # NOT NULL: NULLs replaced
    migrations.AlterField("producto", "nota", models.CharField(max_length=50, null=True)),
    migrations.AlterField("producto", "stock", models.SmallIntegerField()),
    migrations.AlterField("producto", "stock", models.BooleanField(default=False)),
    migrations.AlterField("producto", "precio", models.DecimalField(max_digits=10, decimal_places=1)),
    migrations.AlterField("producto", "precio", models.DecimalField(max_digits=8, decimal_places=2)),
    migrations.AlterField("producto", "nombre", models.CharField(max_length=100, db_column="titulo")),
    migrations.AlterField("pedido", "producto", models.ForeignKey("pedidos.Pedido", models.CASCADE)),
    migrations.RunSQL("DELETE FROM pedidos_pedido"),
    migrations.RunPython(migrations.RunPython.noop),
    migrations.SeparateDatabaseAndState(
        database_operations=[migrations.RunSQL("DROP TABLE pedidos_pedido")],
        state_operations=[migrations.AddIndex("producto", models.Index(fields=["nombre"], name="n_idx"))],
    ),
]


@pytest.mark.parametrize("operation", LOSE, ids=lambda operation: operation.describe())
def test_anything_else_is_refused_naming_the_migration_and_the_operation(operation):
    assert refused(operation) == [f"pedidos.0002_x: {operation.describe()}"]


def test_a_subclass_of_an_allowed_operation_is_not_allowed():
    class AddIndexElsewhere(migrations.AddIndex):  # as contrib.postgres's AddIndexConcurrently
        pass

    AddIndexElsewhere.__module__ = "someapp.operations"
    operation = AddIndexElsewhere("producto", models.Index(fields=["nombre"], name="nombre_idx"))
    assert refused(operation) == ["pedidos.0002_x: " + operation.describe()]


def test_each_operation_is_judged_on_the_models_as_the_earlier_ones_left_them():
    # Widened, then narrowed back: the second is a narrowing of the first.
    wide = migrations.AlterField("producto", "nombre", models.CharField(max_length=300))
    back = migrations.AlterField("producto", "nombre", models.CharField(max_length=200))
    assert refused(wide, back) == ["pedidos.0002_x: Alter field nombre on producto"]
    # A field added in the same migration can then be altered within what keeps its data.
    added = migrations.AddField("producto", "codigo", models.CharField(max_length=10, null=True))
    wider = migrations.AlterField("producto", "codigo", models.CharField(max_length=20, null=True))
    assert refused(added, wider) == []


def test_an_app_with_nothing_migrated_loses_nothing_but_code_may_reach_any_table():
    new_app = [migrations.CreateModel("Nuevo", [("id", models.BigAutoField(primary_key=True))])]
    drop = migrations.DeleteModel("Nuevo")
    assert refused(*new_app, drop, app="nuevo") == []
    code = migrations.RunPython(migrations.RunPython.noop)
    assert refused(code, app="nuevo") == ["nuevo.0002_x: Raw Python operation"]


def test_a_database_with_nothing_migrated_has_nothing_to_lose():
    everything = [migrations.RunPython(migrations.RunPython.noop), migrations.RemoveField("producto", "nombre")]
    assert refused(*everything, migrated=(), anything_migrated=False) == []
