from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0006_model_provenance"),
    ]

    operations = [
        migrations.AddField(
            model_name="model",
            name="attention_layers",
            field=models.JSONField(
                blank=True, help_text="Indices of the layers that keep a KV cache (null: every layer).", null=True
            ),
        ),
        migrations.AddField(
            model_name="model",
            name="recurrent_layers",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Indices of the layers that keep a recurrent state instead of a KV cache.",
            ),
        ),
        migrations.AddField(
            model_name="model",
            name="recurrent_state_values",
            field=models.PositiveIntegerField(
                blank=True, help_text="F32 values of recurrent state per recurrent layer and sequence.", null=True
            ),
        ),
        migrations.AddField(
            model_name="model",
            name="kv_heads_per_layer",
            field=models.JSONField(
                blank=True, default=list, help_text="KV heads of each layer where the architecture varies them."
            ),
        ),
    ]
