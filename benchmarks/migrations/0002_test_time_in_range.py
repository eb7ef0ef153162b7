"""Bound test_time to [2023-01-01, 2100-01-01) in the database, after repairing rows already outside it.

A run stored with "0001-01-01T00:00:00+14:00" became a BC timestamp in PostgreSQL that psycopg cannot read back,
so every page listing it answered 500. The repair never reads the bad value (that is what fails): it selects the
rows by comparison in SQL, clears their test_time, and sends accepted ones back to review (flagged) with a
recorded decision, so a moderator sees what happened.
"""

from __future__ import annotations

import datetime

from django.db import migrations, models
from django.db.models import Q

EARLIEST = datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC)
LATEST = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
REASON = "test_time was outside 2023-01-01 .. 2100-01-01 and has been cleared; held for review."


def repair_test_times(apps, schema_editor) -> None:
    run_model = apps.get_model("benchmarks", "BenchmarkRun")
    decision_model = apps.get_model("benchmarks", "ModerationDecision")
    bad = run_model.objects.filter(Q(test_time__lt=EARLIEST) | Q(test_time__gte=LATEST))
    rows = list(bad.values_list("pk", "status"))  # never selects test_time itself
    if not rows:
        return
    bad.update(test_time=None)
    decisions = []
    for pk, status in rows:
        to_status = "flagged" if status == "accepted" else status
        run_model.objects.filter(pk=pk).update(status=to_status, status_reason=REASON)
        decisions.append(
            decision_model(run_id=pk, moderator=None, from_status=status, to_status=to_status, reason=REASON)
        )
    decision_model.objects.bulk_create(decisions)
    if schema_editor.connection.vendor == "postgresql":
        # Check the new rows' deferred foreign keys now: PostgreSQL refuses ALTER TABLE (the constraint below) in a
        # transaction with pending trigger events.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [("benchmarks", "0001_initial")]

    operations = [
        migrations.RunPython(repair_test_times, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="benchmarkrun",
            constraint=models.CheckConstraint(
                condition=Q(test_time__isnull=True) | Q(test_time__gte=EARLIEST, test_time__lt=LATEST),
                name="bench_test_time_in_range",
            ),
        ),
    ]
