"""Import a model from a Hugging Face repository: its file list with exact sizes, its config.json, a GGUF header.

Two steps, so that nothing is written until everything has been read:

- `read_repository(repo_id=..., revision=...)` talks to the Hub (through `huggingface_hub`, which honours
  `HF_ENDPOINT`) and returns a `RepoSnapshot`: the model's fields, one quantization per GGUF file (split files
  `-00001-of-0000N.gguf` summed into one), the safetensors weights as one row, the vision encoder from an `mmproj`
  GGUF. Architecture comes from `config.json` (through `catalog.importers.model_fields_from_hf_config`), or for a
  GGUF-only repository from the header of one GGUF file, read with HTTP Range requests of growing prefixes
  (1, 4, 16 MiB, at most `HubLimits.header_cap_bytes`) until the metadata and tensor table parse: never the weights.
- `store_snapshot(snapshot, ...)` writes the model and its quantizations in one transaction.

Every HTTP call has a timeout and the whole read has a deadline (`HubLimits`); any failure raises `HubImportError`
with a message meant for the person who asked (not found, gated, timed out, malformed header, ...).
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from catalog.importers import (
    ARCHITECTURE_FIELDS,
    ConfigError,
    GgufError,
    model_fields_from_gguf,
    model_fields_from_hf_config,
)
from catalog.models import Modality, Model, QuantFormat, Quantization, ReviewStatus

__all__ = [
    "CLI_LIMITS",
    "WEB_LIMITS",
    "HubImportError",
    "HubLimits",
    "ImportResult",
    "RepoSnapshot",
    "import_repository",
    "parse_gguf_header",
    "read_repository",
    "store_snapshot",
    "validate_repo_id",
]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,119}$")
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)
# Quant names as llama.cpp and the usual uploaders write them in file names: Q4_K_M, IQ4_XS, Q8_0, BF16, UD-Q4_K_XL...
_QUANT_RE = re.compile(
    r"(?:^|[-_.])((?:UD-)?(?:I?Q\d(?:_[A-Z0-9]{1,4}){0,3}|BF16|F16|FP16|F32|FP32|MXFP4(?:_MOE)?|TQ\d_\d))(?=$|[-_.])",
    re.IGNORECASE,
)
_CONFIG_CAP_BYTES = 2 * MIB
_MAX_SHARDS = 16
# huggingface_hub's ModelInfo.created_at: "the lowest value is 2022-03-02T23:29:04.000Z, corresponding to the date when
# we began to store creation dates" (huggingface_hub/hf_api.py, ModelInfo docstring): older repositories all carry it.
HUB_CREATED_AT_FLOOR = datetime(2022, 3, 2, 23, 29, 4, tzinfo=UTC)


def _hub_date(value: Any) -> date | None:
    """A Hub timestamp (huggingface_hub parses the API's ISO strings into aware datetimes) as a UTC calendar day."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    if isinstance(value, date):
        return value
    return None


@dataclass(frozen=True)
class HubLimits:
    """How long one import may hold the caller: a timeout per HTTP call, a deadline for the whole read."""

    call_timeout_s: float = 20.0
    total_s: float = 120.0
    header_cap_bytes: int = 32 * MIB


# The command line can wait; a web worker is held at most WEB_LIMITS.total_s (the page says so).
CLI_LIMITS = HubLimits()
WEB_LIMITS = HubLimits(call_timeout_s=5.0, total_s=20.0, header_cap_bytes=32 * MIB)


class HubImportError(Exception):
    """An import that cannot go on; the message says why, in words for the person who asked."""


@dataclass
class QuantFile:
    name: str  # Q4_K_M, BF16, ...
    format: str  # QuantFormat
    file_name: str  # the single file, or the first shard
    file_bytes: int  # exact: the Hub's size of every file summed
    n_files: int = 1
    tensor_bytes: int | None = None  # from a header we read
    bits_per_weight: float | None = None


@dataclass
class RepoSnapshot:
    repo_id: str
    ref: str  # what was asked for: a branch, tag or commit
    sha: str  # the commit read
    endpoint: str
    fields: dict[str, Any]  # Model architecture fields
    citation: str
    name: str
    publisher: str
    family: str
    license: str
    modality: str
    quants: list[QuantFile] = field(default_factory=list)
    has_gguf: bool = False
    notes: list[str] = field(default_factory=list)
    # The repository's dates on the Hub (huggingface_hub ModelInfo.created_at / .last_modified, the API's createdAt /
    # lastModified) as read at `sha`, for Model.released / Model.repo_updated; None when the Hub gives none.
    created: date | None = None
    updated: date | None = None

    @property
    def api_citation(self) -> str:
        """Where the dates come from: the Hub's model API at the revision read."""
        return f"{self.endpoint}/api/models/{self.repo_id}/revision/{self.sha}"


@dataclass(frozen=True)
class ImportResult:
    model: Model
    created: bool
    snapshot: RepoSnapshot
    changed: bool


# --------------------------------------------------------------------------------------------------------------------
# Validation of what people type
# --------------------------------------------------------------------------------------------------------------------


def validate_repo_id(repo_id: str) -> str:
    """`owner/name` as the Hub spells it; a URL to the repository is accepted too. Raises HubImportError."""
    text = (repo_id or "").strip()
    for prefix in ("https://huggingface.co/", "http://huggingface.co/", "huggingface.co/", "hf.co/"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
            text = "/".join(text.split("/")[:2])
    if not REPO_ID_RE.match(text) or ".." in text or "--" in text:
        raise HubImportError(f"{repo_id!r} is not a repository id: write it as owner/name, e.g. google/gemma-3-270m")
    return text


def validate_revision(revision: str | None) -> str | None:
    if revision in (None, ""):
        return None
    if not REVISION_RE.match(revision) or ".." in revision:
        raise HubImportError(f"{revision!r} is not a branch, tag or commit")
    return revision


# --------------------------------------------------------------------------------------------------------------------
# HTTP with a deadline
# --------------------------------------------------------------------------------------------------------------------


class _Deadline:
    def __init__(self, limits: HubLimits) -> None:
        self.limits = limits
        self.until = time.monotonic() + limits.total_s

    def timeout(self) -> float:
        left = self.until - time.monotonic()
        if left <= 0:
            raise HubImportError(
                f"Stopped: reading the repository took longer than {self.limits.total_s:g} s. Try again later."
            )
        return min(self.limits.call_timeout_s, left)


def _endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _token() -> str | bool:
    return getattr(settings, "RIGFIT_HF_TOKEN", "") or False  # False: never a token saved on the server by accident


def _hub_error(exc: BaseException, *, repo_id: str, revision: str | None, limits: HubLimits) -> HubImportError:
    """One clear sentence for each way the Hub can refuse or fail."""
    import httpx2
    from huggingface_hub import errors

    token_hint = (
        "an operator's token (RIGFIT_HF_TOKEN) does not give access to it"
        if _token()
        else "this server has no Hugging Face token (an operator sets RIGFIT_HF_TOKEN)"
    )
    if isinstance(exc, errors.GatedRepoError):
        return HubImportError(
            f"{repo_id} is gated: its files are shown only to accounts that accepted its terms, and {token_hint}."
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return HubImportError(f"{repo_id} was not found on the Hub (or it is private and {token_hint}).")
    if isinstance(exc, errors.RevisionNotFoundError):
        return HubImportError(f"{repo_id} has no revision {revision!r}.")
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return HubImportError(f"{repo_id}: a file listed by the Hub could not be read (404).")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return HubImportError("This server is in Hugging Face offline mode (HF_HUB_OFFLINE); imports are off.")
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "an error"
        if status in (401, 403):
            return HubImportError(f"{repo_id} refused access ({status}): it is private or gated, and {token_hint}.")
        return HubImportError(f"The Hub answered {status} for {repo_id}; nothing was imported.")
    if isinstance(exc, httpx2.TimeoutException):
        return HubImportError(
            f"The Hub did not answer within {limits.call_timeout_s:g} s for {repo_id}; nothing was imported. "
            "Try again later."
        )
    if isinstance(exc, httpx2.HTTPError | OSError):
        return HubImportError(f"Could not reach the Hub for {repo_id} ({type(exc).__name__}); nothing was imported.")
    return HubImportError(f"Reading {repo_id} failed ({type(exc).__name__}); nothing was imported.")


def _read_bytes(url: str, *, n_bytes: int, deadline: _Deadline, ranged: bool) -> tuple[bytes, bool]:
    """At most `n_bytes` from the start of `url` (a Range request when `ranged`); (bytes, whether the file ended).

    Reads no further than asked even from a server that ignores Range, and gives up at the deadline.
    """
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    headers = build_hf_headers(token=_token())
    if ranged:
        headers["Range"] = f"bytes=0-{n_bytes - 1}"
    chunks: list[bytes] = []
    got = 0
    with get_session().stream("GET", url, headers=headers, timeout=deadline.timeout()) as response:
        if response.status_code >= 400:
            response.read()
            hf_raise_for_status(response)
        ended = True
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            got += len(chunk)
            if got >= n_bytes:
                ended = False
                break
            deadline.timeout()  # raises past the deadline
    data = b"".join(chunks)[:n_bytes]
    return data, ended and len(data) < n_bytes


# --------------------------------------------------------------------------------------------------------------------
# GGUF headers from a prefix of the file
# --------------------------------------------------------------------------------------------------------------------


class _Truncated(Exception):
    """The prefix ends inside the header: read a longer one."""


@dataclass
class GgufHeader:
    version: int
    kv: dict[str, Any]  # scalars and strings; arrays as their length
    tensors: list[tuple[str, tuple[int, ...], int]]  # name, dims, ggml type
    data_offset: int  # where tensor data starts: the header's length

    @property
    def n_elements(self) -> int:
        total = 0
        for _, dims, _ in self.tensors:
            count = 1
            for dim in dims:
                count *= dim
            total += count
        return total

    @property
    def tensor_bytes(self) -> int:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        total = 0
        for name, dims, kind in self.tensors:
            try:
                block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
            except (ValueError, KeyError) as exc:
                raise GgufError(f"tensor {name} has unknown ggml type {kind}") from exc
            count = 1
            for dim in dims:
                count *= dim
            total += count // block * type_size
        return total


_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def parse_gguf_header(data: bytes) -> GgufHeader:
    """The metadata and tensor table at the start of a GGUF file (versions 2 and 3, either byte order).

    Raises GgufError for bytes that are not a GGUF header, _Truncated when `data` ends inside the header.
    """
    if len(data) < 24:
        raise _Truncated
    if data[:4] != b"GGUF":
        raise GgufError(f"not a GGUF file (it starts with {data[:4]!r}, not b'GGUF')")
    order = "<"
    version = struct.unpack_from("<I", data, 4)[0]
    if version & 0xFFFF == 0:
        order, version = ">", struct.unpack_from(">I", data, 4)[0]
    if version not in (2, 3):
        raise GgufError(f"GGUF version {version} is not supported (2 and 3 are)")
    n_tensors, n_kv = struct.unpack_from(order + "QQ", data, 8)
    if n_tensors > 1 << 20 or n_kv > 1 << 20:
        raise GgufError(f"GGUF header claims {n_tensors} tensors and {n_kv} metadata keys: not a model header")
    pos = 24

    def take(fmt: str) -> Any:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise _Truncated
        value = struct.unpack_from(order + fmt, data, pos)[0]
        pos += size
        return value

    def string() -> str:
        nonlocal pos
        length = take("Q")
        if length > 64 * MIB:
            raise GgufError(f"GGUF header holds a string of {length} bytes: malformed")
        if pos + length > len(data):
            raise _Truncated
        raw = data[pos : pos + length]
        pos += length
        return raw.decode("utf-8", errors="replace")

    def value(kind: int) -> Any:
        nonlocal pos
        if kind in _SCALARS:
            return take(_SCALARS[kind])
        if kind == _STRING:
            return string()
        if kind == _ARRAY:
            item_kind, count = take("I"), take("Q")
            if count > 1 << 28:
                raise GgufError(f"GGUF header holds an array of {count} items: malformed")
            if item_kind in _SCALARS:
                size = struct.calcsize(_SCALARS[item_kind]) * count
                if pos + size > len(data):
                    raise _Truncated
                pos += size
            elif item_kind == _STRING:
                for _ in range(count):
                    string()
            else:
                raise GgufError(f"GGUF header holds an array of type {item_kind}: malformed")
            return count
        raise GgufError(f"GGUF header holds a value of unknown type {kind}: malformed")

    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = string()
        kv[key] = value(take("I"))
    tensors: list[tuple[str, tuple[int, ...], int]] = []
    for _ in range(n_tensors):
        name = string()
        n_dims = take("I")
        if not 1 <= n_dims <= 8:
            raise GgufError(f"tensor {name!r} has {n_dims} dimensions: malformed")
        dims = tuple(take("Q") for _ in range(n_dims))
        kind = take("I")
        take("Q")  # offset within the data section
        tensors.append((name, dims, kind))
    alignment = kv.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0:
        raise GgufError(f"general.alignment {alignment!r} is not a positive integer")
    data_offset = -(-pos // alignment) * alignment
    return GgufHeader(version=version, kv=kv, tensors=tensors, data_offset=data_offset)


def _read_gguf_header(url: str, *, file_name: str, file_bytes: int, deadline: _Deadline) -> tuple[GgufHeader, bytes]:
    """Range-read growing prefixes of a GGUF file until its header parses; (header, the bytes read)."""
    cap = deadline.limits.header_cap_bytes
    size = min(1 * MIB, cap)
    while True:
        data, ended = _read_bytes(url, n_bytes=min(size, file_bytes), deadline=deadline, ranged=True)
        try:
            header = parse_gguf_header(data)
        except _Truncated:
            if ended or len(data) >= file_bytes:
                raise HubImportError(f"{file_name}: the file ends inside its GGUF header: malformed") from None
            if size >= cap:
                raise HubImportError(
                    f"{file_name}: its GGUF header is larger than {cap // MIB} MiB, more than an import reads"
                ) from None
            size = min(size * 4, cap)
            continue
        except GgufError as exc:
            raise HubImportError(f"{file_name}: malformed GGUF header ({exc})") from exc
        return header, data


def _summary_from_prefix(prefix: bytes, *, file_name: str, file_bytes: int) -> Any:
    """`model_fields_from_gguf` on a sparse copy: the header bytes we read, then a hole as long as the weights."""
    if len(prefix) > file_bytes:
        raise HubImportError(f"{file_name}: the server sent more bytes than the Hub lists for the file")
    with tempfile.TemporaryDirectory(prefix="rigfit-hf-") as folder:
        path = Path(folder) / Path(file_name).name
        with open(path, "wb") as handle:
            handle.write(prefix)
            handle.truncate(file_bytes)
        try:
            return model_fields_from_gguf(path)
        except GgufError as exc:
            raise HubImportError(f"{file_name}: malformed GGUF header ({exc})") from exc


# --------------------------------------------------------------------------------------------------------------------
# The repository's files
# --------------------------------------------------------------------------------------------------------------------


def quant_name_of(file_name: str) -> str | None:
    stem = Path(file_name).name
    stem = _SPLIT_RE.sub(r"\g<stem>", stem) if _SPLIT_RE.match(stem) else stem.removesuffix(".gguf")
    found = _QUANT_RE.findall(stem)
    return found[-1].upper()[:24] if found else None


@dataclass
class _GgufGroup:
    key: str  # file name without the shard suffix
    files: list[tuple[str, int]]  # (name, size) in shard order
    total: int  # shards expected

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def complete(self) -> bool:
        return len(self.files) == self.total


def _gguf_groups(files: Iterable[tuple[str, int]]) -> tuple[list[_GgufGroup], list[tuple[str, int]], list[str]]:
    """(model GGUF files grouped by split, mmproj files, notes)."""
    groups: dict[str, _GgufGroup] = {}
    mmproj: list[tuple[str, int]] = []
    notes: list[str] = []
    for name, size in files:
        base = Path(name).name
        if not base.lower().endswith(".gguf"):
            continue
        if base.lower().startswith("mmproj") or "-mmproj" in base.lower():
            mmproj.append((name, size))
            continue
        match = _SPLIT_RE.match(name)
        if match:
            key, total = match["stem"], int(match["total"])
            group = groups.setdefault(key, _GgufGroup(key=key, files=[], total=total))
            group.files.append((name, size))
        else:
            groups[name] = _GgufGroup(key=name, files=[(name, size)], total=1)
    complete: list[_GgufGroup] = []
    for group in groups.values():
        group.files.sort()
        if group.complete:
            complete.append(group)
        else:
            notes.append(f"{group.key}: {len(group.files)} of {group.total} split files listed; left out")
    return complete, mmproj, notes


def _file_url(repo_id: str, file_name: str, sha: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo_id, file_name, revision=sha, endpoint=_endpoint())


def read_repository(*, repo_id: str, revision: str | None = None, limits: HubLimits = CLI_LIMITS) -> RepoSnapshot:
    """Read a repository on the Hub into a RepoSnapshot; no database access. Raises HubImportError."""
    repo_id = validate_repo_id(repo_id)
    revision = validate_revision(revision)
    deadline = _Deadline(limits)
    try:
        return _read_repository(repo_id=repo_id, revision=revision, deadline=deadline)
    except HubImportError:
        raise
    except (ConfigError, GgufError) as exc:
        raise HubImportError(f"{repo_id}: {exc}") from exc
    except Exception as exc:
        import httpx2
        from huggingface_hub import errors

        if isinstance(exc, errors.HfHubHTTPError | errors.OfflineModeIsEnabled | httpx2.HTTPError | OSError):
            raise _hub_error(exc, repo_id=repo_id, revision=revision, limits=limits) from exc
        # Anything else (an answer that is not the JSON the Hub sends, a header gguf cannot map): a message, not a 500.
        log.warning("import of %s failed", repo_id, exc_info=True)
        raise HubImportError(f"Reading {repo_id} failed ({type(exc).__name__}); nothing was imported.") from exc


def _read_repository(*, repo_id: str, revision: str | None, deadline: _Deadline) -> RepoSnapshot:
    from huggingface_hub import HfApi

    endpoint = _endpoint()
    api = HfApi(endpoint=endpoint, token=_token())
    info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=deadline.timeout())
    sha = info.sha or revision or "main"
    files = [(s.rfilename, int(s.size)) for s in (info.siblings or []) if s.size is not None and s.size > 0]
    names = {name for name, _ in files}
    groups, mmproj, notes = _gguf_groups(files)
    has_config = "config.json" in names
    if not groups and not has_config:
        raise HubImportError(
            f"{repo_id} has neither a config.json nor a GGUF file: nothing here describes a model rigfit can fit."
        )

    owner, name = repo_id.split("/", 1)
    card = info.card_data.to_dict() if info.card_data is not None else {}
    created = _hub_date(getattr(info, "created_at", None))
    if created is not None and getattr(info, "created_at", None) == HUB_CREATED_AT_FLOOR:
        created = None  # a repository older than the Hub's creation dates: the floor, not its release
    licence = card.get("license") if isinstance(card.get("license"), str) else "unknown"
    at = f"{endpoint}/{repo_id}/blob/{sha}"
    snapshot = RepoSnapshot(
        repo_id=repo_id,
        ref=revision or "main",
        sha=sha,
        endpoint=endpoint,
        fields={},
        citation="",
        name=name[:120],
        publisher=owner[:80],
        family="unknown",
        license=licence[:80],
        modality=Modality.TEXT,
        has_gguf=bool(groups),
        notes=notes,
        created=created,
        updated=_hub_date(getattr(info, "last_modified", None)),
    )

    header_quant: str | None = None
    header_summary: Any = None
    if has_config:
        raw, ended = _read_bytes(
            _file_url(repo_id, "config.json", sha), n_bytes=_CONFIG_CAP_BYTES, deadline=deadline, ranged=False
        )
        if not ended:
            raise HubImportError(f"{repo_id}: config.json is larger than {_CONFIG_CAP_BYTES // MIB} MiB")
        try:
            config = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HubImportError(f"{repo_id}: config.json is not valid JSON ({exc})") from exc
        try:
            snapshot.fields = model_fields_from_hf_config(config)
        except ConfigError as exc:
            raise HubImportError(f"{repo_id}: config.json cannot describe a model ({exc})") from exc
        text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
        snapshot.family = str(text.get("model_type") or config.get("model_type") or "unknown")[:60]
        snapshot.citation = f"{at}/config.json"
        if config.get("vision_config"):
            snapshot.modality = Modality.VISION
        total = getattr(info.safetensors, "total", None) if info.safetensors else None
        if isinstance(total, int) and total > 0:
            snapshot.fields["n_params"] = total
            snapshot.notes.append("n_params: the Hub's count of every safetensors parameter")
    else:
        # GGUF only: one file's header. The smallest single file; else the smallest split set, every shard's table.
        singles = [g for g in groups if g.total == 1]
        group = min(singles or groups, key=lambda g: g.bytes)
        if group.total > _MAX_SHARDS:
            raise HubImportError(f"{repo_id}: {group.key} is split into {group.total} files, more than an import reads")
        first, first_size = group.files[0]
        url = _file_url(repo_id, first, sha)
        header, prefix = _read_gguf_header(url, file_name=first, file_bytes=first_size, deadline=deadline)
        header_summary = _summary_from_prefix(
            prefix[: max(header.data_offset, 0)], file_name=first, file_bytes=first_size
        )
        fields = dict(header_summary.fields)
        tensor_bytes = header_summary.tensor_bytes
        n_params = header_summary.n_params
        has_output = not fields["tied_embeddings"]
        for shard, shard_size in group.files[1:]:
            shard_header, _ = _read_gguf_header(
                _file_url(repo_id, shard, sha), file_name=shard, file_bytes=shard_size, deadline=deadline
            )
            n_params += shard_header.n_elements
            tensor_bytes += shard_header.tensor_bytes
            has_output = has_output or any(t[0] == "output.weight" for t in shard_header.tensors)
        fields["n_params"] = n_params
        fields["tied_embeddings"] = not has_output
        snapshot.fields = fields
        snapshot.family = header_summary.architecture[:60]
        snapshot.citation = f"GGUF header of {at}/{first}" + (
            f" and its {group.total - 1} other shards" if group.total > 1 else ""
        )
        header_quant = group.key
        header_summary = (tensor_bytes, n_params, header_summary.quant_name)

    n_params = int(snapshot.fields["n_params"])
    if mmproj and not snapshot.fields.get("vision_params"):
        proj_name, proj_size = min(mmproj, key=lambda item: item[1])
        proj_header, _ = _read_gguf_header(
            _file_url(repo_id, proj_name, sha), file_name=proj_name, file_bytes=proj_size, deadline=deadline
        )
        vision = proj_header.n_elements
        if vision > 0:
            snapshot.fields["vision_params"] = vision
            snapshot.fields["n_params"] = n_params + vision
            snapshot.modality = Modality.VISION
            snapshot.notes.append(f"vision encoder: {vision:,} parameters in {proj_name} ({proj_size:,} bytes)")

    seen: set[str] = set()
    for group in sorted(groups, key=lambda g: -g.bytes):
        first = group.files[0][0]
        quant = quant_name_of(first)
        tensor_bytes = None
        bits = round(group.bytes * 8 / n_params, 4)
        if group.key == header_quant and header_summary is not None:
            tensor_bytes, header_params, ftype = header_summary
            quant = quant or ftype
            bits = round(tensor_bytes * 8 / header_params, 4)
        quant = quant or Path(group.key).name.removesuffix(".gguf")[-24:]
        if quant in seen:
            snapshot.notes.append(f"{group.key}: another file already gives {quant}; left out")
            continue
        seen.add(quant)
        snapshot.quants.append(
            QuantFile(
                name=quant,
                format=QuantFormat.GGUF,
                file_name=first[:200],
                file_bytes=group.bytes,
                n_files=len(group.files),
                tensor_bytes=tensor_bytes,
                bits_per_weight=bits,
            )
        )
    weights = [(n, s) for n, s in files if n.endswith(".safetensors")]
    if weights:
        dtypes = getattr(info.safetensors, "parameters", None) or {}
        dtype = max(dtypes, key=dtypes.get) if dtypes else "BF16"
        total_bytes = sum(s for _, s in weights)
        snapshot.quants.append(
            QuantFile(
                name=str(dtype).upper()[:24],
                format=QuantFormat.SAFETENSORS,
                file_name=weights[0][0][:200] if len(weights) == 1 else f"{len(weights)} safetensors files",
                file_bytes=total_bytes,
                n_files=len(weights),
                bits_per_weight=round(total_bytes * 8 / int(snapshot.fields["n_params"]), 4),
            )
        )
    return snapshot


# --------------------------------------------------------------------------------------------------------------------
# Storing
# --------------------------------------------------------------------------------------------------------------------


def _free_slug(base: str, *, exclude_pk: int | None) -> str:
    base = (slugify(base) or "model")[:110]
    taken = set(Model.all_objects.filter(slug__startswith=base).exclude(pk=exclude_pk).values_list("slug", flat=True))
    if base not in taken:
        return base
    for i in range(2, 1000):
        if f"{base}-{i}" not in taken:
            return f"{base}-{i}"
    raise HubImportError(f"no free slug for {base}")


def store_snapshot(snapshot: RepoSnapshot, *, status: str, user: Any = None) -> ImportResult:
    """Create or update the imported model for `snapshot.repo_id` and its quantizations, in one transaction.

    `status` is what a new model gets (PENDING for anonymous web imports, UNREVIEWED otherwise). An existing pending
    model becomes UNREVIEWED when a signed-in user or an operator imports it again; a reviewed one goes back to
    UNREVIEWED when its figures change. Curated models are not touched: importing their repository is refused.
    """
    with transaction.atomic():
        curated = Model.all_objects.filter(source_repo__iexact=snapshot.repo_id, review_status=ReviewStatus.CURATED)
        if curated.exists():
            raise HubImportError(
                f"{snapshot.repo_id} is already in the catalog as {curated.first().name} (curated); it is not imported."
            )
        model = Model.all_objects.select_for_update().filter(source_repo__iexact=snapshot.repo_id).first()
        created = model is None
        if model is None:
            model = Model(
                slug=_free_slug(snapshot.repo_id.replace("/", "-"), exclude_pk=None),
                name=snapshot.name,
                family=snapshot.family,
                publisher=snapshot.publisher,
                license=snapshot.license,
                source_repo=snapshot.repo_id,
                review_status=status,
                imported_at=timezone.now(),
                imported_by=user if getattr(user, "is_authenticated", False) else None,
            )
        before = {name: getattr(model, name) for name in ARCHITECTURE_FIELDS} if not created else {}
        previous_sources = dict(model.sources or {})
        for name in ARCHITECTURE_FIELDS:
            setattr(model, name, snapshot.fields.get(name, Model._meta.get_field(name).get_default()))
        if model.swa_layers is None:
            model.swa_layers = []
        changed = created or before != {name: getattr(model, name) for name in ARCHITECTURE_FIELDS}
        changed = changed or model.source_revision != snapshot.sha
        model.family = snapshot.family
        model.modality = snapshot.modality
        model.source_revision = snapshot.sha[:64]
        model.import_ref = snapshot.ref[:120]
        if snapshot.has_gguf:
            model.gguf_repo = snapshot.repo_id
        model.sources = {
            name: snapshot.citation for name in ARCHITECTURE_FIELDS if snapshot.fields.get(name) is not None
        }
        # Release dates from the Hub's own record of the repository, cited to the API at the revision read; a date the
        # Hub no longer gives keeps the one stored before.
        for name, day, key in (
            ("released", snapshot.created, "createdAt"),
            ("repo_updated", snapshot.updated, "lastModified"),
        ):
            if day is not None:
                setattr(model, name, day)
                model.sources[name] = f"{snapshot.api_citation} ({key}, the repository on the Hub)"
            elif getattr(model, name) is not None:
                model.sources[name] = (previous_sources or {}).get(name, "an earlier import from the Hub")
        vouched = model.review_status == ReviewStatus.PENDING and status != ReviewStatus.PENDING
        if not created and (vouched or (model.review_status == ReviewStatus.REVIEWED and changed)):
            model.review_status = ReviewStatus.UNREVIEWED
        try:
            model.full_clean()
        except ValidationError as exc:
            raise HubImportError(
                f"{snapshot.repo_id}: the figures read do not make a valid model ({exc.messages})"
            ) from exc
        model.save()

        existing = {(q.format, q.name): q for q in Quantization.objects.filter(model=model)}
        keep: set[int] = set()
        for item in snapshot.quants:
            quant = existing.get((item.format, item.name)) or Quantization(
                model=model, format=item.format, name=item.name
            )
            quant.file_bytes = item.file_bytes
            quant.tensor_bytes = item.tensor_bytes
            quant.bits_per_weight = item.bits_per_weight
            quant.file_name = item.file_name
            where = f"{snapshot.endpoint}/{snapshot.repo_id}/tree/{snapshot.sha}"
            size_note = f"{item.n_files} files summed" if item.n_files > 1 else "file size"
            quant.source = f"{where} ({size_note} from the Hub's file list)"[:300]
            if item.tensor_bytes:
                quant.source = f"{where}: tensor bytes from the GGUF header, {size_note} from the Hub"[:300]
            try:
                quant.full_clean(validate_constraints=False)
            except ValidationError as exc:
                raise HubImportError(
                    f"{snapshot.repo_id}: quantization {item.name} is not valid ({exc.messages})"
                ) from exc
            quant.save()
            keep.add(quant.pk)
        gone = Quantization.objects.filter(model=model).exclude(pk__in=keep)
        changed = changed or gone.exists()
        gone.delete()
    return ImportResult(model=model, created=created, snapshot=snapshot, changed=changed)


def import_repository(
    *,
    repo_id: str,
    revision: str | None = None,
    status: str = ReviewStatus.UNREVIEWED,
    user: Any = None,
    limits: HubLimits = CLI_LIMITS,
) -> ImportResult:
    """Read then store; raises HubImportError with nothing written when any step fails."""
    snapshot = read_repository(repo_id=repo_id, revision=revision, limits=limits)
    try:
        return store_snapshot(snapshot, status=status, user=user)
    except IntegrityError as exc:
        raise HubImportError(f"{snapshot.repo_id}: could not be stored ({exc}); nothing was written") from exc
