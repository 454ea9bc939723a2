"""Properties of the export file: what is written reads back, and nothing else reads at all.

The exports are built directly (no model, no data), so the properties cost milliseconds per file:
any configuration round-trips; a truncated file, a flipped byte, an unknown version, a missing
array, or a metadata record that lacks a key the loader needs or holds a value of the wrong type
raise `VelcroError`, never another exception and never an export that differs from the one written.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from model.deploy.export import FORMAT_VERSION, READABLE_VERSIONS, LayerExport, load_export, save_export
from model.errors import VelcroError
from model.hw import golden
from model.hw.golden import H, W, ConvConfig
from model.nets.default_model import HW_CHANNELS


def edgy_integers(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([low, high]), st.integers(low, high))


def random_export(rng: np.random.Generator) -> LayerExport:
    """The reference file's export: every register drawn over its whole range."""
    configs = [
        ConvConfig(rng.integers(-128, 128, (3, 3)), int(rng.integers(-(2**31), 2**31)), int(rng.integers(0, 2**16)),
                   int(rng.integers(0, 32)), rng.random((H, W)) < 0.3, rng.integers(0, 256, (H, W)))  # fmt: skip
        for _ in range(HW_CHANNELS)
    ]
    return LayerExport(configs, 0.1, 0.2, rng.random(HW_CHANNELS), rng.random((HW_CHANNELS, H, W)), "t", 0.3, "per-layer", "ab" * 32)


@st.composite
def exports(draw) -> LayerExport:
    """Any export: extreme registers per channel, dense or all-equal masks, any metadata values."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    zp_pattern = draw(st.sampled_from([None, *golden.ZP_PATTERNS]))
    zp_max = draw(edgy_integers(0, 255))
    configs = [
        ConvConfig(
            weights=np.array(draw(st.lists(edgy_integers(-128, 127), min_size=9, max_size=9))).reshape(3, 3),
            bias=draw(edgy_integers(-(2**31), 2**31 - 1)),
            mult=draw(edgy_integers(0, 2**16 - 1)),
            shift=draw(edgy_integers(0, 31)),
            mask=rng.random((H, W)) < draw(st.sampled_from([0.0, 0.3, 1.0])),
            avg=rng.integers(0, 256, (H, W)),
            skip_en=draw(st.booleans()),
            zp_en=zp_pattern is not None,
            zp_pattern=golden.ZP_PATTERNS.get(zp_pattern, 0),
            zp_max=zp_max,
        )
        for _ in range(HW_CHANNELS)
    ]
    finite = st.floats(allow_nan=False, allow_infinity=False)
    return LayerExport(
        configs=configs,
        input_scale=draw(st.floats(min_value=1e-30, max_value=1e30)),
        output_scale=draw(st.floats(min_value=1e-30, max_value=1e30)),
        weight_scales=rng.random(HW_CHANNELS),
        float_mean=rng.normal(size=(HW_CHANNELS, H, W)),
        task=draw(st.text(max_size=20)),
        threshold=draw(st.one_of(st.none(), st.floats(0, 1, exclude_max=True))),
        allocation=draw(st.sampled_from(["per-layer", "balanced"])),
        float_sha256=draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
        input_calibration=draw(st.sampled_from(["max", "p99.99"])),
        calibration_images=draw(st.integers(0, 10**6)),
        seed=draw(st.integers(-(2**63), 2**63 - 1)),
        error=draw(st.dictionaries(st.text(max_size=8), finite, max_size=4)),
        zp_pattern=zp_pattern,
        zp_max=draw(st.floats(min_value=0, allow_infinity=False)),
    )


def assert_same_export(a: LayerExport, b: LayerExport) -> None:
    assert a.meta() == b.meta() and a.version == b.version
    np.testing.assert_array_equal(a.weight_scales, b.weight_scales)
    np.testing.assert_array_equal(a.float_mean, b.float_mean)
    for x, y in zip(a.configs, b.configs, strict=True):
        for name in ("weights", "mask", "avg"):
            np.testing.assert_array_equal(np.asarray(getattr(x, name)), np.asarray(getattr(y, name)))
        scalars = ("bias", "mult", "shift", "skip_en", "zp_en", "zp_pattern", "zp_max")
        assert [int(getattr(x, n)) for n in scalars] == [int(getattr(y, n)) for n in scalars]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def reference(workdir) -> tuple[LayerExport, bytes, dict[str, np.ndarray]]:
    """(export, file bytes, arrays) of one export file that the damage properties start from."""
    export = random_export(np.random.default_rng(0))
    path = save_export(export, workdir / "reference.npz")
    with np.load(path, allow_pickle=False) as f:
        return export, path.read_bytes(), {k: f[k] for k in f.files}


def load_bytes(workdir: Path, data: bytes) -> LayerExport:
    path = workdir / "damaged.npz"
    path.write_bytes(data)
    return load_export(path)


def load_arrays(workdir: Path, arrays: dict[str, np.ndarray]) -> LayerExport:
    path = workdir / "edited.npz"
    np.savez_compressed(path, **arrays)
    return load_export(path)


@given(exports())
def test_any_export_reads_back_as_written(workdir, export):
    assert_same_export(load_export(save_export(export, workdir / "round_trip.npz")), export)


# Offsets into the reference file are drawn over a wide range and taken modulo its length.
offsets = st.one_of(st.integers(0, 64), st.integers(0, 2**32))


@given(offsets)
def test_a_truncated_file_is_refused(workdir, reference, cut):
    _, written, _ = reference
    with pytest.raises(VelcroError, match="not a readable .npz"):
        load_bytes(workdir, written[: cut % len(written)])


@given(st.lists(st.tuples(offsets, st.integers(1, 255)), min_size=1, max_size=3))
# Regression: this flip inside the float means' compressed data (of the seed-0 reference file) used
# to load as 65,536 different means, because np.load stops reading at the array's last byte, before
# zipfile checks the CRC-32.
@example([(78493, 0x80)])
def test_a_flipped_byte_is_refused_or_changes_nothing(workdir, reference, flips):
    """Flips in zip fields that no reader uses (timestamps, "version made by") leave the content as
    written and may load; any flip that would change an array or the metadata must be refused."""
    export, written, _ = reference
    damaged = bytearray(written)
    for offset, xor in flips:
        damaged[offset % len(written)] ^= xor
    try:
        loaded = load_bytes(workdir, bytes(damaged))
    except VelcroError as err:
        assert str(err)
    else:
        assert_same_export(loaded, export)


@given(st.one_of(
    st.integers(-(2**63), 2**63 - 1).filter(lambda v: v not in READABLE_VERSIONS).map(np.int64),
    st.sampled_from([np.float64(FORMAT_VERSION), np.float64(FORMAT_VERSION + 0.5), np.str_(str(FORMAT_VERSION)),
                     np.array([FORMAT_VERSION, FORMAT_VERSION]), np.array(True), np.uint8(FORMAT_VERSION + 1)]),
))  # fmt: skip
def test_a_version_this_code_does_not_read_is_refused(workdir, reference, version):
    _, _, arrays = reference
    with pytest.raises(VelcroError, match="format version"):
        load_arrays(workdir, arrays | {"format_version": np.asarray(version)})


@given(st.sampled_from(READABLE_VERSIONS), st.data())
def test_an_array_the_version_needs_is_required(workdir, reference, version, data):
    """Version 1 may lack the prediction arrays, and then reads with prediction off; nothing else may be missing."""
    _, _, arrays = reference
    needed = [k for k in arrays if k not in ("format_version", "meta_json") and (version >= 2 or not k.startswith("zp_"))]
    missing = data.draw(st.sampled_from(needed))
    edited = {k: v for k, v in arrays.items() if k != missing} | {"format_version": np.int64(version)}
    with pytest.raises(VelcroError, match=f"'{missing}'"):
        load_arrays(workdir, edited)
    if version == 1:
        old = load_arrays(workdir, {k: v for k, v in edited.items() if not k.startswith("zp_")} | {missing: arrays[missing]})
        assert not any(c.zp_en for c in old.configs)


# What the loader reads from the metadata; the rest (densities, ratios, M and S again) it recomputes.
META_READ = {"format", "task", "threshold", "allocation", "float_sha256", "input_scale", "output_scale", "input_calibration",
             "calibration_images", "seed", "float_vs_int8_error", "zp_pattern", "zp_max"}  # fmt: skip


@given(st.data())
def test_metadata_without_a_key_the_loader_reads_is_refused(workdir, reference, data):
    export, _, arrays = reference
    meta = json.loads(str(arrays["meta_json"]))
    missing = data.draw(st.sampled_from(sorted(meta)))
    edited = arrays | {"meta_json": np.array(json.dumps({k: v for k, v in meta.items() if k != missing}))}
    if missing in META_READ:
        with pytest.raises(VelcroError, match="lacks " + missing if missing != "format" else "not a VELCRO layer export"):
            load_arrays(workdir, edited)
    else:
        assert_same_export(load_arrays(workdir, edited), export)


@given(st.one_of(st.text(max_size=30), st.sampled_from(["[]", "null", "3", '{"format": 1}', "{"])))
def test_metadata_that_is_not_an_export_record_is_refused(workdir, reference, text):
    _, _, arrays = reference
    with pytest.raises(VelcroError, match="not a VELCRO layer export"):
        load_arrays(workdir, arrays | {"meta_json": np.array(text)})


# Each key the loader reads, and JSON values it must refuse there (the right key, the wrong type).
json_text = st.text(max_size=8)
json_list = st.lists(st.integers(), max_size=2)
json_object = st.dictionaries(json_text, st.integers(), max_size=2)
WRONG_TYPES = {
    "task": st.one_of(st.none(), st.integers(), json_list),
    "allocation": st.one_of(st.none(), st.floats(allow_nan=False), json_object),
    "float_sha256": st.one_of(st.integers(), st.booleans(), json_list),
    "input_calibration": st.one_of(st.none(), st.integers(), json_object),
    "threshold": st.one_of(st.booleans(), json_text, json_list),
    "input_scale": st.one_of(st.none(), st.booleans(), json_text, json_list),
    "output_scale": st.one_of(st.none(), st.booleans(), json_text, json_object),
    "zp_max": st.one_of(st.none(), st.booleans(), json_text),
    "calibration_images": st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), json_text),
    "seed": st.one_of(st.booleans(), st.floats(allow_nan=False), json_list),
    "float_vs_int8_error": st.one_of(st.none(), st.integers(), json_text, json_list),
    "zp_pattern": st.one_of(st.booleans(), st.integers(), json_list),
}


@given(st.data())
def test_metadata_with_a_value_of_the_wrong_type_is_refused(workdir, reference, data):
    _, _, arrays = reference
    key = data.draw(st.sampled_from(sorted(WRONG_TYPES)))
    value = data.draw(WRONG_TYPES[key])
    meta = json.loads(str(arrays["meta_json"])) | {key: value}
    with pytest.raises(VelcroError, match=f"wrong type \\({key} = "):
        load_arrays(workdir, arrays | {"meta_json": np.array(json.dumps(meta))})
