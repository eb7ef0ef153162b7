from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from benchmarks import services
from benchmarks.models import ApiToken, BenchmarkRun, ModerationDecision, Status


class DecisionInline(admin.TabularInline):
    model = ModerationDecision
    extra = 0
    can_delete = False
    readonly_fields = ["decided_at", "moderator", "from_status", "to_status", "reason"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _decide(request: HttpRequest, queryset: QuerySet[BenchmarkRun], decision: str) -> None:
    for run in queryset:
        services.moderate(run=run, moderator=request.user, decision=decision, reason=f"{decision} from the admin")
    messages.success(request, f"{queryset.count()} run(s) {decision}.")


@admin.action(description="Accept the selected runs (recorded)")
def accept_runs(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[BenchmarkRun]) -> None:
    _decide(request, queryset, Status.ACCEPTED)


@admin.action(description="Reject the selected runs (recorded)")
def reject_runs(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[BenchmarkRun]) -> None:
    _decide(request, queryset, Status.REJECTED)


@admin.register(BenchmarkRun)
class BenchmarkRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "model",
        "quant_name",
        "hardware_name",
        "runtime",
        "backend",
        "avg_ts",
        "status",
        "submitted_at",
    ]
    list_filter = ["status", "runtime", "backend", "channel"]
    search_fields = ["model__name", "hardware_name", "quant_name", "status_reason"]
    list_select_related = ["model", "hardware"]
    raw_id_fields = ["model", "quantization", "hardware", "submitter"]
    readonly_fields = ["status", "status_reason", "payload_sha256", "test", "decode_tps", "prefill_tps", "submitted_at"]
    actions = [accept_runs, reject_runs]
    inlines = [DecisionInline]


@admin.register(ModerationDecision)
class ModerationDecisionAdmin(admin.ModelAdmin):
    list_display = ["run", "moderator", "from_status", "to_status", "reason", "decided_at"]
    readonly_fields = ["run", "moderator", "from_status", "to_status", "reason", "decided_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "token_hash", "created_at", "last_used_at"]
