from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from inference.vision import (
    ImageEmbeddingCache,
    ImageError,
    VisionEngine,
    check_image,
    load_vlm,
    save_tiny_vlm,
    set_vision,
)


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (32, 24), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory):
    return save_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny")


@pytest.fixture
def vision(tiny_vlm_dir):
    engine = VisionEngine(load_vlm(tiny_vlm_dir), cache_entries=2)
    set_vision(engine)
    yield engine
    set_vision(None)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_it_accepts_jpeg_png_and_webp(fmt):
    checked = check_image(image_bytes(fmt))
    assert checked.format == fmt
    assert (checked.width, checked.height) == (32, 24)
    assert checked.image.mode == "RGB"
    assert len(checked.sha256) == 64


def test_it_refuses_other_formats():
    with pytest.raises(ImageError, match="not accepted"):
        check_image(image_bytes("GIF"))


def test_it_refuses_files_that_are_not_images_or_are_truncated():
    with pytest.raises(ImageError):
        check_image(b"not an image at all")
    with pytest.raises(ImageError):
        check_image(image_bytes("PNG", size=(200, 200))[:300])
    with pytest.raises(ImageError, match="empty"):
        check_image(b"")


def test_it_refuses_files_over_10_mb():
    with pytest.raises(ImageError, match="limit is 10 MB"):
        check_image(b"\x89PNG" + b"0" * (10 * 1024 * 1024))


def test_it_refuses_too_many_pixels_before_decoding(monkeypatch):
    monkeypatch.setattr("inference.vision.MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="pixels"):
        check_image(image_bytes("PNG", size=(20, 20)))


def test_it_evicts_the_least_recently_used_embedding():
    cache = ImageEmbeddingCache(max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_it_encodes_an_image_once_for_two_questions(vision):
    image = check_image(image_bytes())
    first = vision.ask(image, "query", "what colour?", max_new_tokens=4)
    second = vision.ask(image, "caption", max_new_tokens=4)
    assert vision.model.encoder_calls == 1
    assert not first.cache_hit and second.cache_hit
    again = vision.ask(check_image(image_bytes()), "query", "what colour?", max_new_tokens=4)
    assert again.text == first.text  # same bytes, same embedding, greedy: same answer


def test_it_re_encodes_after_eviction(vision):
    images = [check_image(image_bytes(color=(i * 40, 0, 0))) for i in range(3)]
    for image in images:
        vision.ask(image, "caption", max_new_tokens=1)
    vision.ask(images[0], "caption", max_new_tokens=1)  # evicted by the third (cache holds 2)
    assert vision.model.encoder_calls == 4


def test_it_detects_and_points_with_normalised_coordinates(vision):
    image = check_image(image_bytes())
    box = vision.ask(image, "detect", "cat", max_new_tokens=2).objects[0]
    assert 0 <= box["x_min"] < box["x_max"] <= 1 and 0 <= box["y_min"] < box["y_max"] <= 1
    point = vision.ask(image, "point", "cat", max_new_tokens=2).objects[0]
    assert 0 <= point["x"] <= 1 and 0 <= point["y"] <= 1


def test_it_refuses_an_unknown_task(vision):
    with pytest.raises(ValueError):
        vision.ask(check_image(image_bytes()), "segment")


def test_it_says_how_to_configure_vision_when_none_is_set(client, monkeypatch):
    monkeypatch.delenv("RIGFIT_DEMO_VLM_PATH", raising=False)
    set_vision(None)
    response = client.post(reverse("inference:vision"), {"task": "caption"})
    assert response.status_code == 503
    assert "RIGFIT_DEMO_VLM_PATH" in response.content.decode()


def test_it_answers_an_upload_on_the_page(client, vision):
    upload = SimpleUploadedFile("red.png", image_bytes(), content_type="image/png")
    response = client.post(reverse("inference:vision"), {"task": "caption", "image": upload})
    assert response.status_code == 200
    assert 'data-cache-hit="0"' in response.content.decode()
    upload = SimpleUploadedFile("red.png", image_bytes(), content_type="image/png")
    response = client.post(reverse("inference:vision"), {"task": "query", "text": "colour?", "image": upload})
    assert 'data-cache-hit="1"' in response.content.decode()


def test_it_answers_422_for_a_bad_upload(client, vision):
    upload = SimpleUploadedFile("x.gif", image_bytes("GIF"), content_type="image/gif")
    response = client.post(reverse("inference:vision"), {"task": "caption", "image": upload})
    assert response.status_code == 422
    assert "JPEG, PNG or WebP" in response.content.decode()
    upload = SimpleUploadedFile("red.png", image_bytes(), content_type="image/png")
    response = client.post(reverse("inference:vision"), {"task": "query", "image": upload})
    assert response.status_code == 422


def test_it_refuses_a_body_over_10_mb_before_reading_it(client, vision):
    response = client.generic(
        "POST",
        reverse("inference:vision"),
        data=b"x" * 100,
        content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(11 * 1024 * 1024),
    )
    assert response.status_code == 413
