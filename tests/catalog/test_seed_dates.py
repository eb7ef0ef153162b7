"""load_seed's optional release dates: `released` and `updated` (the upstream repository's last change), each cited."""

from __future__ import annotations

import datetime
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.management.commands.load_seed import SEED_DIR
from catalog.models import Model

pytestmark = pytest.mark.django_db

ENTRY = """
[[models]]
slug = "dated"
name = "Dated"
family = "x"
publisher = "x"
license = "x"
source_repo = "x/dated"
n_params = 1000000
n_layers = 2
hidden_size = 64
n_heads = 4
n_kv_heads = 4
head_dim = 16
vocab_size = 100
context_length = 2048
{dates}
[models.sources]
n_layers = "a"
hidden_size = "a"
n_heads = "a"
n_kv_heads = "a"
head_dim = "a"
vocab_size = "a"
context_length = "a"
n_params = "a"
{date_sources}
"""


def _seed(tmp_path: Path, dates: str, date_sources: str) -> Path:
    seed = tmp_path / "seed"
    (seed / "models").mkdir(parents=True)
    shutil.copy(SEED_DIR / "quant_ladder.toml", seed / "quant_ladder.toml")
    (seed / "hardware.toml").write_text("")
    (seed / "models" / "dated.toml").write_text(ENTRY.format(dates=dates, date_sources=date_sources))
    return seed


def _load(seed: Path) -> str:
    out = StringIO()
    call_command("load_seed", "--seed-dir", str(seed), "--skip-gpus", stdout=out)
    return out.getvalue()


def test_it_stores_a_cited_release_date_and_repository_update(tmp_path: Path):
    seed = _seed(
        tmp_path,
        'released = 2025-08-05\nupdated = "2025-09-01"',
        'released = "the model card, 5 August 2025"\nupdated = "the repository history"',
    )
    _load(seed)
    model = Model.objects.get(slug="dated")
    assert model.released == datetime.date(2025, 8, 5)
    assert model.repo_updated == datetime.date(2025, 9, 1)
    assert model.sources["released"] == "the model card, 5 August 2025"
    # The seed key `updated` is cited under the field it fills.
    assert model.sources["repo_updated"] == "the repository history"
    assert "updated" not in model.sources


def test_it_leaves_the_dates_empty_where_the_seed_has_none(tmp_path: Path):
    _load(_seed(tmp_path, "", ""))
    model = Model.objects.get(slug="dated")
    assert model.released is None and model.repo_updated is None


def test_it_updates_a_changed_release_date_and_nothing_the_second_time(tmp_path: Path):
    _load(_seed(tmp_path, "released = 2025-08-05", 'released = "a"'))
    (tmp_path / "seed" / "models" / "dated.toml").write_text(
        ENTRY.format(dates="released = 2025-08-06", date_sources='released = "a"')
    )
    assert "1 updated" in _load(tmp_path / "seed")
    assert Model.objects.get(slug="dated").released == datetime.date(2025, 8, 6)
    assert "0 created, 0 updated; quantizations: 0 created, 0 updated" in _load(tmp_path / "seed")


@pytest.mark.parametrize(
    ("dates", "date_sources", "message"),
    [
        ("released = 2025-08-05", "", "released without a source"),
        ('updated = "2025-09-01"', "", "updated without a source"),
        ('released = "August 2025"', 'released = "a"', "not a date"),
        ("released = 2025", 'released = "a"', "must be a date"),
    ],
)
def test_it_refuses_an_uncited_or_malformed_date(tmp_path: Path, dates: str, date_sources: str, message: str):
    with pytest.raises(CommandError, match=message):
        _load(_seed(tmp_path, dates, date_sources))
    assert not Model.objects.exists()
