"""Image, audio and video tokens by each provider's published formula (issue #15 point 1).

Sizes are read from real image bytes written by Pillow (an independent encoder); the expected token counts
are the worked examples on the providers' pages, or hand arithmetic on their stated rule:
https://platform.openai.com/docs/guides/images-vision#calculating-costs,
https://docs.claude.com/en/docs/build-with-claude/vision#evaluate-image-size,
https://ai.google.dev/gemini-api/docs/tokens#multimodal-tokens,
https://www.alibabacloud.com/help/en/model-studio/vision.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tokprof.cli import main
from tokprof.profiler.providers.chat_format import count_messages
from tokprof.profiler.providers.media import (
    anthropic_tokens,
    gemini_tokens,
    image_size,
    openai_patch_tokens,
    openai_tile_tokens,
    part_tokens,
    prompt_media,
    qwen_vl_tokens,
)


def _bytes(w: int, h: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def _data_url(w: int, h: int, fmt: str = "PNG") -> str:
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(_bytes(w, h, fmt)).decode()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_sizes_are_read_from_the_bytes(fmt: str) -> None:
    assert image_size(_bytes(1234, 567, fmt)) == (1234, 567)


def test_openai_tile_worked_examples() -> None:
    assert openai_tile_tokens(1024, 1024, "high") == 765        # 4 tiles after 768 scaling: 85 + 4 x 170
    assert openai_tile_tokens(2048, 4096, "high") == 1105       # 1024x2048 -> 768x1536: 6 tiles
    assert openai_tile_tokens(4096, 8192, "low") == 85          # low detail: base only
    assert openai_tile_tokens(1024, 1024, "high", 2833, 5667) == 25501   # gpt-4o-mini's multiplier


def test_openai_patch_worked_examples() -> None:
    assert openai_patch_tokens(1024, 1024, 1.0) == 1024         # 32 x 32 patches
    assert openai_patch_tokens(1800, 2400, 1.0) == 1452         # scaled to 1056x1408: 33 x 44 patches
    assert openai_patch_tokens(1800, 2400, 1.62) == int(1452 * 1.62)   # gpt-4.1-mini multiplier


def test_anthropic_vision_table() -> None:
    assert anthropic_tokens(200, 200) == 54
    assert anthropic_tokens(1000, 1000) == 1334
    assert anthropic_tokens(1092, 1092) == 1590
    assert anthropic_tokens(4000, 3000) <= 1600                 # resized to ~1.15 MP first


def test_gemini_and_qwen_rules() -> None:
    assert gemini_tokens(384, 384) == 258
    assert gemini_tokens(1024, 1024) == 4 * 258                 # 768x768 tiles
    assert qwen_vl_tokens(28, 28) == 4 + 2                      # min_pixels = 4 tokens, + vision start/end
    # 1024x1024: 37x37 patches exceed 1280 -> scaled: floor(1024 / 1.0222 / 28) = 35 per side
    assert qwen_vl_tokens(1024, 1024) == 35 * 35 + 2


@pytest.mark.parametrize("model,expected", [
    ("gpt-4.1", 765), ("gpt-4o-mini", 25501), ("gpt-4.1-mini", int(1024 * 1.62)),
    ("claude-sonnet-4-5", 1399), ("gemini-2.5-flash", 1032), ("qwen-vl-max", 1227),
])
def test_a_real_1024_square_image_per_model(model: str, expected: int) -> None:
    part = {"type": "image_url", "image_url": {"url": _data_url(1024, 1024), "detail": "high"}}
    c = part_tokens(part, model)
    assert (c.tokens, c.exact) == (expected, True)


def test_every_dialect_of_image_part_is_measured() -> None:
    b64 = base64.b64encode(_bytes(1000, 1000, "JPEG")).decode()
    for part in ({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64}},
                 {"type": "input_image", "image_url": "data:image/jpeg;base64," + b64},
                 {"inline_data": {"mime_type": "image/jpeg", "data": b64}},
                 {"image": "data:image/jpeg;base64," + b64}):
        assert part_tokens(part, "claude-sonnet-4-5").tokens == 1334, part.keys()


def test_remote_images_audio_and_video_are_estimated_with_the_assumption_stated() -> None:
    remote = part_tokens({"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}, "gpt-4.1")
    assert not remote.exact and "assumed 1024x1024" in remote.note and remote.tokens == 765
    audio = part_tokens({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"},
                         "duration": 3}, "gemini-2.5-flash")
    assert (audio.tokens, audio.exact) == (96, False)            # 32 tokens/s x 3 s
    video = part_tokens({"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}, "gemini-2.5-pro")
    assert not video.exact and "duration assumed" in video.note


def test_counts_use_the_model_rule_and_the_memo_keeps_models_apart() -> None:
    msgs = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image_url", "image_url": {"url": _data_url(1024, 1024)}}]}]
    text_only = [{"role": "user", "content": "what is this?"}]
    assert count_messages(msgs, "gpt-4o") - count_messages(text_only, "gpt-4o") == 765
    assert count_messages(msgs, "gpt-4o-mini") - count_messages(text_only, "gpt-4o-mini") == 25501
    assert prompt_media(msgs, "gpt-4o").exact


def test_count_command_does_not_call_an_estimated_image_exact(tmp_path, capsys) -> None:
    f = tmp_path / "prompt.json"
    f.write_text(json.dumps([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/screenshot.png"}}]}]))
    assert main(["count", str(f), "--model", "gpt-4.1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exact"] is False and out["source"] == "estimated"
    assert "assumed 1024x1024" in (out["approximation"] or "")
