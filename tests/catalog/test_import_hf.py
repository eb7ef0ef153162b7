"""import_hf, refresh_hf and the "Add a model" page against a local fake Hugging Face Hub.

The fake hub is an HTTP server on 127.0.0.1 serving the endpoints huggingface_hub calls: model info with the file list
and sizes (`/api/models/<repo>[/revision/<rev>]?blobs=true`) and `/<repo>/resolve/<rev>/<file>`, which honours Range.
Its GGUF files are written by the `gguf` package. HF_ENDPOINT points at it; nothing touches the internet.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from catalog.hf import HubLimits, parse_gguf_header, quant_name_of
from catalog.models import Model, Quantization, ReviewStatus

SHA = "0123456789abcdef0123456789abcdef01234567"
SHA2 = "fedcba9876543210fedcba9876543210fedcba98"


def write_gguf(path: Path, *, arch: str = "llama", n_tokens: int = 300, big_tensor: bool = True) -> Path:
    """A small llama-shaped GGUF: 2 layers, width 64, 4 heads (2 KV), `n_tokens` vocabulary entries."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    if arch == "clip":
        writer.add_tensor("v.patch_embd.weight", np.ones((16, 3, 4, 4), dtype=np.float16))
        writer.add_tensor("mm.0.weight", np.ones((64, 16), dtype=np.float16))
    else:
        writer.add_name("Tiny Llama")
        writer.add_block_count(2)
        writer.add_context_length(4096)
        writer.add_embedding_length(64)
        writer.add_feed_forward_length(128)
        writer.add_head_count(4)
        writer.add_head_count_kv(2)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_token_list([f"token-number-{i:07d}" for i in range(n_tokens)])
        writer.add_tensor("token_embd.weight", np.ones((n_tokens, 64), dtype=np.float16))
        for layer in range(2):
            writer.add_tensor(f"blk.{layer}.attn_q.weight", np.ones((64, 64), dtype=np.float16))
            writer.add_tensor(f"blk.{layer}.attn_k.weight", np.ones((32, 64), dtype=np.float16))
            writer.add_tensor(f"blk.{layer}.attn_v.weight", np.ones((32, 64), dtype=np.float16))
            writer.add_tensor(f"blk.{layer}.attn_output.weight", np.ones((64, 64), dtype=np.float16))
            writer.add_tensor(f"blk.{layer}.ffn_gate.weight", np.ones((128, 64), dtype=np.float16))
            writer.add_tensor(f"blk.{layer}.ffn_up.weight", np.ones((128, 64), dtype=np.float16))
            writer.add_tensor(f"blk.{layer}.ffn_down.weight", np.ones((64, 128), dtype=np.float16))
        writer.add_tensor("output_norm.weight", np.ones((64,), dtype=np.float32))
        if big_tensor:  # 4 MiB of "weights" after the header: an import must never read them
            writer.add_tensor("output.weight", np.ones((2 * 1024 * 1024 // 64, 64), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": True,
}


class FakeHub:
    """Repositories: repo id -> {"files": {name: bytes}, "gated": bool, "private": bool, "slow": bool, ...}."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.served: dict[str, int] = {}  # file name -> bytes sent
        self.ranges: list[str] = []
        self.release = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, repo_id: str, files: dict[str, bytes], **options: Any) -> None:
        self.repos[repo_id] = {"files": files, "sha": options.pop("sha", SHA), **options}

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        request.send_response(status)
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _error(self, request: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
        self._send(request, status, body, headers)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(request.path).path)
        info = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/(.+))?$", path)
        resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        repo_id = (info or resolve).group(1) if (info or resolve) else None
        repo = self.repos.get(repo_id or "")
        if repo is None or (repo.get("private") and info):
            return self._error(request, 401 if repo else 404, "RepoNotFound", "Repository not found")
        if repo.get("slow"):
            self.release.wait(5)  # longer than the client's timeout
        if info and repo.get("broken_info"):
            return self._send(request, 200, b"<html>maintenance</html>", {"Content-Type": "text/html"})
        if info:
            revision = info.group(2)
            if revision not in (None, "main", repo["sha"]):
                return self._error(request, 404, "RevisionNotFound", "Invalid rev id")
            siblings = [{"rfilename": name, "size": len(data)} for name, data in repo["files"].items()]
            body = {
                "id": repo_id,
                "sha": repo["sha"],
                "private": False,
                "gated": "manual" if repo.get("gated") else False,
                "siblings": siblings,
                "cardData": {"license": repo.get("license", "apache-2.0")},
            }
            if "safetensors" in repo:
                body["safetensors"] = repo["safetensors"]
            # The Hub's model API names the repository's dates createdAt and lastModified (ISO 8601, UTC).
            for key in ("createdAt", "lastModified"):
                if key in repo:
                    body[key] = repo[key]
            return self._send(request, 200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        assert resolve is not None
        if repo.get("gated"):
            return self._error(request, repo["gated"], "GatedRepo", "Access to this model is restricted")
        name = resolve.group(3)
        if resolve.group(2) not in ("main", repo["sha"]) or name not in repo["files"]:
            return self._error(request, 404, "EntryNotFound", "Entry not found")
        data = repo["files"][name]
        range_header = request.headers.get("Range")
        if range_header:
            self.ranges.append(f"{name} {range_header}")
            start, end = (int(x) for x in re.match(r"bytes=(\d+)-(\d+)", range_header).groups())
            part = data[start : end + 1]
            headers = {"Content-Range": f"bytes {start}-{start + len(part) - 1}/{len(data)}"}
            self.served[name] = self.served.get(name, 0) + len(part)
            return self._send(request, 206, part, headers)
        self.served[name] = self.served.get(name, 0) + len(data)
        return self._send(request, 200, data)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    fake = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield fake
    fake.stop()


@pytest.fixture
def gguf_repo(hub, tmp_path):
    small = write_gguf(tmp_path / "tiny-Q8_0.gguf").read_bytes()
    mmproj = write_gguf(tmp_path / "mmproj.gguf", arch="clip").read_bytes()
    files = {
        "README.md": b"# tiny\n",
        "tiny-Q8_0.gguf": small,
        "tiny-F16.gguf": b"\0" * (len(small) + 1000),  # bigger than Q8_0: never read, only its size counts
        "tiny-Q4_K_M-00001-of-00002.gguf": b"\0" * 70_001,
        "tiny-Q4_K_M-00002-of-00002.gguf": b"\0" * 30_002,
        "mmproj-tiny-f16.gguf": mmproj,
    }
    hub.add("someone/tiny-GGUF", files)
    return files


@pytest.fixture
def safetensors_repo(hub):
    files = {
        "config.json": json.dumps(LLAMA_CONFIG).encode(),
        "model.safetensors": b"\0" * 123_457,
        "README.md": b"# small llama\n",
    }
    hub.add("someone/small-llama", files, safetensors={"parameters": {"BF16": 1_235_814_400}, "total": 1_235_814_400})
    return files


def counts() -> tuple[int, int]:
    return Model.all_objects.count(), Quantization.objects.count()


# --- the GGUF header parser -----------------------------------------------------------------------------------------


def test_it_parses_a_gguf_header_from_a_prefix_and_asks_for_more_when_cut(tmp_path):
    from catalog.hf import _Truncated

    data = write_gguf(tmp_path / "m.gguf", big_tensor=False).read_bytes()
    header = parse_gguf_header(data)
    assert header.kv["general.architecture"] == "llama"
    assert len(header.tensors) == 2 * 7 + 2
    assert header.n_elements == 300 * 64 + 2 * (64 * 64 * 2 + 32 * 64 * 2 + 3 * 128 * 64) + 64
    with pytest.raises(_Truncated):
        parse_gguf_header(data[: header.data_offset - 100])


def test_it_names_quants_from_file_names():
    assert quant_name_of("Qwen3-8B-Q4_K_M.gguf") == "Q4_K_M"
    assert quant_name_of("sub/gemma-3-27b-it-UD-Q4_K_XL-00001-of-00002.gguf") == "UD-Q4_K_XL"
    assert quant_name_of("model-bf16.gguf") == "BF16"
    assert quant_name_of("Llama-3.2-1B-Instruct-IQ4_XS.gguf") == "IQ4_XS"
    assert quant_name_of("model.gguf") is None


# --- import_hf --------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_imports_a_gguf_repository_with_exact_sizes_and_the_header_architecture(hub, gguf_repo):
    call_command("import_hf", "someone/tiny-GGUF")
    model = Model.all_objects.get(source_repo="someone/tiny-GGUF")
    assert model.family == "llama"  # general.architecture of the header
    assert (model.n_layers, model.hidden_size, model.n_heads, model.n_kv_heads, model.vocab_size) == (2, 64, 4, 2, 300)
    assert model.context_length == 4096
    assert model.source_revision == SHA and model.import_ref == "main"
    assert model.review_status == ReviewStatus.UNREVIEWED
    assert model.provenance == f"Imported from someone/tiny-GGUF@{SHA[:12]}, not reviewed"
    assert model.modality == "vision-language"
    assert model.vision_params == 16 * 3 * 4 * 4 + 64 * 16  # the mmproj file's tensors
    assert model.gguf_repo == "someone/tiny-GGUF"
    assert "GGUF header of" in model.sources["n_layers"] and SHA in model.sources["n_layers"]

    quants = {q.name: q for q in model.quantizations.all()}
    assert set(quants) == {"Q8_0", "F16", "Q4_K_M"}  # mmproj is not a quantization
    assert quants["Q8_0"].file_bytes == len(gguf_repo["tiny-Q8_0.gguf"])
    assert quants["F16"].file_bytes == len(gguf_repo["tiny-F16.gguf"])
    assert quants["Q4_K_M"].file_bytes == 70_001 + 30_002  # split files summed
    assert quants["Q4_K_M"].file_name == "tiny-Q4_K_M-00001-of-00002.gguf"
    header = parse_gguf_header(gguf_repo["tiny-Q8_0.gguf"])
    assert quants["Q8_0"].tensor_bytes == header.tensor_bytes
    assert model.n_params == header.n_elements + model.vision_params

    # Only the header was read: a prefix of the file, never its 4 MiB of weights; the other files not at all.
    assert 0 < hub.served["tiny-Q8_0.gguf"] <= 1024 * 1024 < len(gguf_repo["tiny-Q8_0.gguf"])
    assert "tiny-F16.gguf" not in hub.served and "tiny-Q4_K_M-00001-of-00002.gguf" not in hub.served


@pytest.mark.django_db
def test_it_reads_growing_prefixes_until_a_large_header_parses(hub, tmp_path):
    data = write_gguf(tmp_path / "big-vocab-Q8_0.gguf", n_tokens=60_000).read_bytes()  # a header over 1 MiB
    header = parse_gguf_header(data)
    assert header.data_offset > 1024 * 1024
    hub.add("someone/big-vocab-GGUF", {"big-vocab-Q8_0.gguf": data})
    call_command("import_hf", "someone/big-vocab-GGUF")
    model = Model.all_objects.get(source_repo="someone/big-vocab-GGUF")
    assert model.vocab_size == 60_000
    assert hub.ranges == ["big-vocab-Q8_0.gguf bytes=0-1048575", "big-vocab-Q8_0.gguf bytes=0-4194303"]


@pytest.mark.django_db
def test_it_imports_a_safetensors_repository_from_its_config(hub, safetensors_repo):
    call_command("import_hf", "someone/small-llama", "--revision", SHA)
    model = Model.all_objects.get(source_repo="someone/small-llama")
    assert (model.n_layers, model.hidden_size, model.n_kv_heads, model.head_dim) == (16, 2048, 8, 64)
    assert model.context_length == 131072 and model.tied_embeddings
    assert model.n_params == 1_235_814_400  # the Hub's safetensors count
    assert model.sources["n_layers"].endswith(f"/someone/small-llama/blob/{SHA}/config.json")
    assert model.import_ref == SHA
    (quant,) = model.quantizations.all()
    assert (quant.format, quant.name, quant.file_bytes) == ("safetensors", "BF16", 123_457)


@pytest.mark.django_db
def test_it_reads_a_vision_language_config_with_nested_text_and_vision_parts(hub):
    config = {
        "model_type": "gemma3",
        "text_config": {**LLAMA_CONFIG, "model_type": "gemma3_text"},
        "vision_config": {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "patch_size": 14,
            "image_size": 896,
        },
        "mm_tokens_per_image": 256,
    }
    hub.add("someone/small-vlm", {"config.json": json.dumps(config).encode(), "model.safetensors": b"\0" * 999})
    call_command("import_hf", "someone/small-vlm")
    model = Model.all_objects.get(source_repo="someone/small-vlm")
    assert model.modality == "vision-language" and model.family == "gemma3_text"
    assert (model.n_layers, model.hidden_size, model.image_tokens) == (16, 2048, 256)
    assert model.vision_params > 400_000_000  # a SigLIP-sized encoder, from vision_config


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("repo_id", "setup", "message"),
    [
        ("someone/missing", None, "was not found on the Hub"),
        ("someone/private", {"private": True}, "was not found on the Hub (or it is private"),
        ("someone/gated-401", {"gated": 401}, "is gated"),
        ("someone/gated-403", {"gated": 403}, "is gated"),
        ("someone/empty", {"files": {"README.md": b"hi"}}, "neither a config.json nor a GGUF file"),
        ("someone/junk-GGUF", {"files": {"junk-Q4_0.gguf": b"PK\x03\x04" + b"\0" * 5000}}, "malformed GGUF header"),
        (
            "someone/bad-type-GGUF",
            {
                "files": {
                    "bad-Q4_0.gguf": b"GGUF\x03\0\0\0"
                    + (1).to_bytes(8, "little") * 2
                    + b"\x01\0\0\0\0\0\0\0k"
                    + (99).to_bytes(4, "little")
                    + b"\0" * 100
                }
            },
            "malformed GGUF header",
        ),
        ("someone/bad-revision", {"files": {"config.json": b"{}"}, "revision": "nope"}, "has no revision 'nope'"),
        ("someone/bad-config", {"files": {"config.json": b'{"model_type": 3'}}, "config.json is not valid JSON"),
        ("someone/no-layers", {"files": {"config.json": b"{}"}}, "config.json cannot describe a model"),
        ("someone/html-hub", {"broken_info": True}, "Reading someone/html-hub failed (JSONDecodeError)"),
    ],
)
def test_it_refuses_clearly_and_stores_nothing(hub, tmp_path, repo_id, setup, message):
    setup = dict(setup or {})
    revision = setup.pop("revision", None)
    if setup or repo_id != "someone/missing":
        files = setup.pop("files", {"config.json": json.dumps(LLAMA_CONFIG).encode()})
        hub.add(repo_id, files, **setup)
    before = counts()
    args = ["import_hf", repo_id] + (["--revision", revision] if revision else [])
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command(*args)
    assert counts() == before


@pytest.mark.django_db
def test_it_gives_up_on_a_slow_hub_and_stores_nothing(hub, safetensors_repo):
    hub.add("someone/slow", {"config.json": json.dumps(LLAMA_CONFIG).encode()}, slow=True)
    with pytest.raises(CommandError, match=r"did not answer within 0\.5 s"):
        call_command("import_hf", "someone/slow", "--timeout", "0.5")
    assert counts() == (0, 0)


@pytest.mark.django_db
def test_it_stores_nothing_when_a_later_file_fails(hub, tmp_path):
    """The header parsed, then the mmproj file is junk: the whole import is refused, no model half-made."""
    good = write_gguf(tmp_path / "m-Q8_0.gguf").read_bytes()
    hub.add("someone/half-GGUF", {"m-Q8_0.gguf": good, "mmproj-m.gguf": b"nonsense" * 10})
    with pytest.raises(CommandError, match=r"mmproj-m\.gguf: malformed GGUF header"):
        call_command("import_hf", "someone/half-GGUF")
    assert counts() == (0, 0)


@pytest.mark.django_db
def test_it_refuses_a_bad_repository_id(hub):
    with pytest.raises(CommandError, match="not a repository id"):
        call_command("import_hf", "../../etc/passwd")


# --- refresh_hf -------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_refresh_picks_up_new_quant_files_and_a_new_revision(hub, gguf_repo):
    call_command("import_hf", "someone/tiny-GGUF")
    model = Model.all_objects.get(source_repo="someone/tiny-GGUF")
    model.review_status = ReviewStatus.REVIEWED
    model.save()
    q6_bytes = len(gguf_repo["tiny-Q8_0.gguf"]) + 5_000  # larger than Q8_0: the header read stays on Q8_0
    files = {**gguf_repo, "tiny-Q6_K.gguf": b"\0" * q6_bytes}
    hub.add("someone/tiny-GGUF", files, sha=SHA2)
    call_command("refresh_hf")
    model.refresh_from_db()
    assert model.source_revision == SHA2
    assert model.quantizations.get(name="Q6_K").file_bytes == q6_bytes
    assert model.review_status == ReviewStatus.UNREVIEWED  # changed since it was reviewed


@pytest.mark.django_db
def test_refresh_reports_a_failure_and_keeps_the_model(hub, gguf_repo):
    call_command("import_hf", "someone/tiny-GGUF")
    del hub.repos["someone/tiny-GGUF"]
    with pytest.raises(CommandError, match="1 of 1 imported models could not be refreshed"):
        call_command("refresh_hf")
    assert Model.all_objects.filter(source_repo="someone/tiny-GGUF").exists()


# --- the "Add a model" page -------------------------------------------------------------------------------------------


@pytest.fixture
def fast_limits(settings):
    settings.RIGFIT_HF_WEB_LIMITS = HubLimits(call_timeout_s=0.5, total_s=3.0)
    return settings


@pytest.mark.django_db
def test_the_page_says_how_long_an_import_may_take(client, settings):
    text = client.get(reverse("catalog:add_model")).content.decode()
    assert "may take 5 s at most and the whole import 20 s" in text  # catalog.hf.WEB_LIMITS
    assert "waits for a moderator" in text
    settings.RIGFIT_HF_WEB_LIMITS = HubLimits(call_timeout_s=7, total_s=33)
    text = client.get(reverse("catalog:add_model")).content.decode()
    assert "may take 7 s at most and the whole import 33 s" in text and "at most 33 seconds" in text


@pytest.mark.django_db
def test_an_anonymous_import_waits_for_a_moderator(client, hub, gguf_repo, fast_limits):
    response = client.post(reverse("catalog:add_model"), {"repo_id": "https://huggingface.co/someone/tiny-GGUF"})
    assert response.status_code == 302
    model = Model.all_objects.get(source_repo="someone/tiny-GGUF")
    assert model.review_status == ReviewStatus.PENDING and model.imported_by is None
    assert not Model.objects.filter(pk=model.pk).exists()  # not in the catalog yet
    assert client.get(model.get_absolute_url()).status_code == 404
    assert "awaiting a moderator" in client.get(response.url).content.decode()

    staff = get_user_model().objects.create_user("mod", password="pw-123456-xyz", is_staff=True)
    client.force_login(staff)
    page = client.get(reverse("catalog:add_model")).content.decode()
    assert "Awaiting a moderator" in page and "someone/tiny-GGUF" in page
    response = client.post(reverse("catalog:review_import", args=[model.slug]), {"decision": "accept"})
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.review_status == ReviewStatus.REVIEWED
    assert Model.objects.filter(pk=model.pk).exists()
    assert client.get(model.get_absolute_url()).status_code == 200


@pytest.mark.django_db
def test_a_moderator_rejects_an_import(client, hub, gguf_repo, fast_limits):
    client.post(reverse("catalog:add_model"), {"repo_id": "someone/tiny-GGUF"})
    model = Model.all_objects.get(source_repo="someone/tiny-GGUF")
    url = reverse("catalog:review_import", args=[model.slug])
    assert client.post(url, {"decision": "reject"}).status_code == 302  # not staff: sent to sign in
    assert Model.all_objects.filter(pk=model.pk).exists()
    client.force_login(get_user_model().objects.create_user("mod", password="pw-123456-xyz", is_staff=True))
    assert client.get(url).status_code == 405
    client.post(url, {"decision": "reject"})
    assert counts() == (0, 0)


@pytest.mark.django_db
def test_a_signed_in_import_appears_at_once_marked_not_reviewed(client, hub, safetensors_repo, fast_limits):
    user = get_user_model().objects.create_user("ada", password="pw-123456-xyz")
    client.force_login(user)
    response = client.post(reverse("catalog:add_model"), {"repo_id": "someone/small-llama"})
    model = Model.objects.get(source_repo="someone/small-llama")
    assert response.status_code == 302 and response.url == model.get_absolute_url()
    assert model.review_status == ReviewStatus.UNREVIEWED and model.imported_by == user
    assert client.get(model.get_absolute_url()).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("repo_id", "setup", "message"),
    [
        ("someone/missing", None, "was not found on the Hub"),
        ("someone/gated", {"gated": 403}, "is gated"),
        ("someone/empty", {"files": {"README.md": b"hi"}}, "neither a config.json nor a GGUF file"),
        ("someone/junk-GGUF", {"files": {"junk.gguf": b"GGUF\x07\0\0\0" + b"\0" * 64}}, "malformed GGUF header"),
        ("someone/slow", {"slow": True}, "did not answer within 0.5 s"),
    ],
)
def test_the_page_shows_why_an_import_failed_and_stores_nothing(client, hub, fast_limits, repo_id, setup, message):
    if setup is not None:
        hub.add(repo_id, setup.pop("files", {"config.json": json.dumps(LLAMA_CONFIG).encode()}), **setup)
    response = client.post(reverse("catalog:add_model"), {"repo_id": repo_id})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert counts() == (0, 0)


@pytest.mark.django_db
def test_the_form_shows_field_errors(client):
    response = client.post(reverse("catalog:add_model"), {"repo_id": "not a repo", "revision": "../x"})
    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {"repo_id", "revision"}
    assert "is not a repository id" in response.content.decode()


@pytest.mark.django_db
def test_imports_are_rate_limited_per_client(client, hub, fast_limits):
    fast_limits.RIGFIT_HF_RATE_ANON = 2
    for _ in range(2):
        assert client.post(reverse("catalog:add_model"), {"repo_id": "someone/missing"}).status_code == 200
    response = client.post(reverse("catalog:add_model"), {"repo_id": "someone/missing"})
    assert response.status_code == 429
    assert "Too many imports" in response.content.decode()
    other = client.post(reverse("catalog:add_model"), {"repo_id": "someone/missing"}, REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 200


@pytest.mark.django_db
def test_it_stores_a_hybrids_attention_and_recurrent_layers(hub):
    from tests.catalog.test_fit_architectures import LFM2_CONFIG

    hub.add("someone/small-hybrid", {"config.json": json.dumps(LFM2_CONFIG).encode(), "model.safetensors": b"\0" * 99})
    call_command("import_hf", "someone/small-hybrid")
    model = Model.all_objects.get(source_repo="someone/small-hybrid")
    # LFM2-1.2B's config: attention on layers 2, 5, 8, 10, 12, 14; a short-convolution state of 2048 x (3 - 1) values
    # on the other ten (llama.cpp's n_embd_r).
    assert model.attention_layers == [2, 5, 8, 10, 12, 14]
    assert len(model.recurrent_layers) == 10 and 2 not in model.recurrent_layers
    assert model.recurrent_state_values == 4096


# --- release dates from the Hub -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_reads_the_release_dates_from_the_hub_and_cites_the_api_at_that_revision(hub, gguf_repo):
    hub.repos["someone/tiny-GGUF"].update(createdAt="2025-08-05T16:42:10.000Z", lastModified="2025-08-12T23:59:59.000Z")
    call_command("import_hf", "someone/tiny-GGUF")
    model = Model.all_objects.get(source_repo="someone/tiny-GGUF")
    assert (model.released, model.repo_updated) == (date(2025, 8, 5), date(2025, 8, 12))
    api = f"{hub.url}/api/models/someone/tiny-GGUF/revision/{SHA}"
    assert model.sources["released"] == f"{api} (createdAt, the repository on the Hub)"
    assert model.sources["repo_updated"] == f"{api} (lastModified, the repository on the Hub)"


@pytest.mark.django_db
def test_a_refresh_moves_the_update_date_and_keeps_the_release_date(hub, gguf_repo):
    hub.repos["someone/tiny-GGUF"].update(createdAt="2025-08-05T16:42:10.000Z", lastModified="2025-08-12T09:00:00.000Z")
    call_command("import_hf", "someone/tiny-GGUF")
    hub.add("someone/tiny-GGUF", gguf_repo, sha=SHA2, lastModified="2025-11-30T01:02:03.000Z")  # no createdAt now
    call_command("refresh_hf")
    model = Model.all_objects.get(source_repo="someone/tiny-GGUF")
    assert (model.released, model.repo_updated) == (date(2025, 8, 5), date(2025, 11, 30))
    assert model.sources["repo_updated"].startswith(f"{hub.url}/api/models/someone/tiny-GGUF/revision/{SHA2} ")
    assert model.sources["released"].startswith(f"{hub.url}/api/models/someone/tiny-GGUF/revision/{SHA} ")


@pytest.mark.django_db
def test_it_does_not_take_the_hubs_oldest_creation_date_for_a_release(hub, safetensors_repo):
    # huggingface_hub's ModelInfo.created_at: "the lowest value is 2022-03-02T23:29:04.000Z, corresponding to the date
    # when we began to store creation dates": a repository that old has no creation date of its own.
    hub.repos["someone/small-llama"].update(createdAt="2022-03-02T23:29:04.000Z", lastModified="2024-09-25T14:40:33Z")
    call_command("import_hf", "someone/small-llama")
    model = Model.all_objects.get(source_repo="someone/small-llama")
    assert (model.released, model.repo_updated) == (None, date(2024, 9, 25))
    assert "released" not in model.sources and "lastModified" in model.sources["repo_updated"]


@pytest.mark.django_db
def test_a_repository_without_dates_stores_none(hub, safetensors_repo):
    call_command("import_hf", "someone/small-llama")
    model = Model.all_objects.get(source_repo="someone/small-llama")
    assert (model.released, model.repo_updated) == (None, None)
    assert "released" not in model.sources and "repo_updated" not in model.sources
