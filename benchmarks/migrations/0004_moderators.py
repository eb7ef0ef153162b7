"""Moderating benchmark runs becomes a permission of its own, held by a "Benchmark moderators" group: before, every
staff member could moderate (issue #12, defect 5)."""

from __future__ import annotations

from django.db import migrations

GROUP = "Benchmark moderators"


def create_group(apps, schema_editor) -> None:
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    content_type, _ = content_type_model.objects.get_or_create(app_label="benchmarks", model="benchmarkrun")
    # Permissions are otherwise created after the last migration (post_migrate); the group needs this one now.
    permission, _ = permission_model.objects.get_or_create(
        content_type=content_type,
        codename="moderate_benchmarkrun",
        defaults={"name": "Can accept or reject benchmark runs"},
    )
    group, _ = group_model.objects.get_or_create(name=GROUP)
    group.permissions.add(permission)


def remove_group(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("benchmarks", "0003_rate_count"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="benchmarkrun",
            options={
                "ordering": ["-submitted_at", "-id"],
                "permissions": [("moderate_benchmarkrun", "Can accept or reject benchmark runs")],
            },
        ),
        migrations.RunPython(create_group, remove_group),
    ]
