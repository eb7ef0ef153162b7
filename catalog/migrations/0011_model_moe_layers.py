# Generated for rigfit on 2026-11-30: Model.moe_layers (llama.cpp's --n-cpu-moe moves only these layers' experts).

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0010_model_per_layer_embed_params"),
    ]

    operations = [
        migrations.AddField(
            model_name="model",
            name="moe_layers",
            field=models.JSONField(
                blank=True,
                help_text=(
                    "Indices of the layers that hold routed experts, where not every layer does (null: all of a MoE's)."
                ),
                null=True,
            ),
        ),
    ]
