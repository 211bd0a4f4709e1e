"""skinage ingest: the three source formats, bad input set aside with reasons, the real data sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_image, shared_data
from skinage.cli import main
from skinage.config import ConfigError
from skinage.data.images import load_crop
from skinage.data.ingest import detect_format, ingest
from skinage.data.manifest import read_manifest

REMAP = "0,1:0 2,3:1 4:2 5,6:3"


# --------------------------------------------------------------------------- a generated AI-Hub tree


def _label(filename, pid, angle, grade, bbox, facepart=1, age=40, gender="F"):
    obj = {
        "info": {"filename": filename, "id": pid, "gender": gender, "age": age, "angle": angle},
        "images": {"width": 64, "height": 48, "facepart": facepart, "bbox": bbox},
        "annotations": {},
    }
    if grade is not None:
        obj["annotations"]["forehead_wrinkle"] = grade
    return obj


def make_aihub_tree(root: Path) -> Path:
    """AI-Hub layout: images in 원천데이터/, JSON labels in 라벨링데이터/ (plus one beside its image).

    Six good people x 2 angles, then one of each kind of bad input. Returns the root.
    """
    img_dir, lab_dir = root / "원천데이터" / "forehead", root / "라벨링데이터" / "forehead"
    img_dir.mkdir(parents=True)
    lab_dir.mkdir(parents=True)

    def put(stem, obj, where=lab_dir):
        (where / f"{stem}.json").write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")

    for i in range(6):
        pid = f"{i + 1:04d}"
        for angle in ("F", "L15"):
            stem = f"{pid}_01_{angle}"
            make_image(img_dir / f"{stem}.jpg", value=(40 * i, 100, 150), size=(64, 48), seed=i, fmt="JPEG")
            put(f"{stem}_01", _label(f"{stem}.jpg", pid, angle, grade=i, bbox=[8, 4, 56, 20]))
            # another face part of the same image: set aside by --facepart 1
            put(f"{stem}_02", _label(f"{stem}.jpg", pid, angle, grade=i, bbox=[8, 20, 30, 40], facepart=2))
    # 0007: found only by the name pattern (no info.filename), label beside the image, null bbox
    make_image(img_dir / "0007_01_F.jpg", value=(200, 60, 60), size=(64, 48), seed=7, fmt="JPEG")
    obj = _label("", "0007", "F", grade=6, bbox=None)
    del obj["info"]["filename"]
    put("0007_01_F_01", obj, where=img_dir)
    # 0008: Korean file name, CMYK JPEG
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(img_dir / "홍길동_정면.jpg", quality=95)
    put("0008_01_F_01", _label("홍길동_정면.jpg", "0008", "F", grade=2, bbox=[0, 0, 32, 24]))
    # 0009: 16-bit PNG
    Image.fromarray(np.full((48, 64), 50000, np.uint16)).save(img_dir / "0009_01_F.png")
    put("0009_01_F_01", _label("0009_01_F.png", "0009", "F", grade=3, bbox=[4, 4, 60, 44]))
    # 0010: stored 48 wide x 64 tall with EXIF orientation 6: upright 64 x 48, bbox in upright pixels
    arr = np.zeros((64, 48, 3), np.uint8)
    arr[:, :24] = (255, 0, 0)  # stored left half red -> upright top half red
    arr[:, 24:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(img_dir / "0010_01_F.jpg", exif=exif, quality=95)
    put("0010_01_F_01", _label("0010_01_F.jpg", "0010", "F", grade=4, bbox=[2, 2, 62, 20]))
    # 0020: a label file written in cp949 (Korean Windows) with a Korean value
    obj = _label("0020_01_F.jpg", "0020", "F", grade=0, bbox=[8, 4, 56, 20])
    obj["info"]["partname"] = "이마"
    make_image(img_dir / "0020_01_F.jpg", size=(64, 48), fmt="JPEG")
    (lab_dir / "0020_01_F_01.json").write_bytes(json.dumps(obj, ensure_ascii=False).encode("cp949"))
    # bad input, one each
    make_image(img_dir / "0011_01_F.jpg", size=(64, 48), fmt="JPEG")
    put("0011_01_F_01", _label("0011_01_F.jpg", "0011", "F", grade=None, bbox=[8, 4, 56, 20]))  # missing key
    make_image(img_dir / "0012_01_F.jpg", size=(64, 48), fmt="JPEG")
    put("0012_01_F_01", _label("0012_01_F.jpg", "0012", "F", grade=1, bbox=[100, 80, 160, 120]))  # outside
    make_image(img_dir / "0013_01_F.jpg", size=(64, 48), fmt="JPEG")
    put("0013_01_F_01", _label("0013_01_F.jpg", "0013", "F", grade=1, bbox=[50, 20, 10, 5]))  # inverted
    good = (img_dir / "0001_01_F.jpg").read_bytes()
    (img_dir / "0014_01_F.jpg").write_bytes(good[: len(good) // 2])  # truncated
    put("0014_01_F_01", _label("0014_01_F.jpg", "0014", "F", grade=1, bbox=None))
    (img_dir / "0015_01_F.jpg").write_bytes(b"")  # zero bytes
    put("0015_01_F_01", _label("0015_01_F.jpg", "0015", "F", grade=1, bbox=None))
    (img_dir / "0016_01_F.jpg").write_text("not a jpeg", encoding="utf-8")  # non-image
    put("0016_01_F_01", _label("0016_01_F.jpg", "0016", "F", grade=1, bbox=None))
    put("0017_01_F_01", _label("0017_01_F.jpg", "0017", "F", grade=1, bbox=None))  # image missing
    make_image(img_dir / "0018_01_F.jpg", size=(64, 48), fmt="JPEG")
    put("0018_01_F_01", _label("0018_01_F.jpg", "0018", "F", grade=9, bbox=None))  # outside the remap
    (lab_dir / "0019_01_F_01.json").write_text("{ broken", encoding="utf-8")  # corrupt label file
    # a copy of 0001's F label under another name: the same image and box twice
    put("0001_01_F_01 (copy)", _label("0001_01_F.jpg", "0001", "F", grade=0, bbox=[8, 4, 56, 20]))
    return root


EXPECTED_REJECTS = {
    "0011_01_F_01.json": "missing label key",
    "0012_01_F_01.json": "bbox outside image",
    "0013_01_F_01.json": "bbox inverted",
    "0014_01_F_01.json": "truncated",
    "0015_01_F_01.json": "zero-byte file",
    "0016_01_F_01.json": "non-image",
    "0017_01_F_01.json": "missing file",
    "0018_01_F_01.json": "label outside remap",
    "0019_01_F_01.json": "corrupt label file",
}


def test_aihub_json_tree(tmp_path, capsys):
    root = make_aihub_tree(tmp_path / "aihub")
    assert detect_format(root) == "aihub-json"
    out = tmp_path / "m.csv"
    rc = main(["ingest", str(root), "--label", "annotations.forehead_wrinkle", "--facepart", "1",
               "--remap", REMAP, "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    m = read_manifest(out)
    df = m.df
    assert m.classes == ["0", "1", "2", "3"] and m.ordinal
    # 12 good + 0007 + 0008 + 0009 + 0010 + 0020
    assert len(df) == 17
    assert sorted(df["subject"].unique()) == [f"{i:04d}" for i in range(1, 11)] + ["0020"]
    assert set(df["view"]) == {"F", "L15"}
    # grades 0..5 of people 1..6, remapped: 0,1->0 2,3->1 4->2 5->3
    per = df.drop_duplicates("subject").set_index("subject")
    assert [per.loc[f"{i:04d}", "class_name"] for i in range(1, 11)] == ["0", "0", "1", "1", "2", "3", "3", "1", "1", "2"]
    assert per.loc["0003", "raw_label"] == "2"
    # bboxes kept; the null bbox is the whole image (NaN) and counted
    r1 = df[df["path"].str.endswith("0001_01_F.jpg")].iloc[0]
    assert (r1.x0, r1.y0, r1.x1, r1.y1) == (8, 4, 56, 20)
    assert df[df["subject"] == "0007"][["x0", "y0", "x1", "y1"]].isna().all(axis=None)
    assert "1 whole image" in text
    assert m.meta["bbox"]["whole_image"] == 1
    # metadata from the label files
    assert (df["age"] == 40).all() and set(df["gender"]) == {"F"}
    # Korean file name and special images are in, with their upright sizes
    kor = df[df["subject"] == "0008"].iloc[0]
    assert Path(kor.path).name == "홍길동_정면.jpg" and Path(kor.path).is_file()
    rot = df[df["subject"] == "0010"].iloc[0]
    assert (rot.width, rot.height) == (64, 48)
    crop = load_crop(rot.path, (rot.x0, rot.y0, rot.x1, rot.y1), 16)
    assert crop[..., 0].mean() > 200 and crop[..., 2].mean() < 60  # the upright top half is red
    g16 = load_crop(df[df["subject"] == "0009"].iloc[0].path, None, 8)
    assert abs(int(g16[0, 0, 0]) - round(50000 / 257)) <= 1
    cmyk = load_crop(kor.path, (kor.x0, kor.y0, kor.x1, kor.y1), 8)
    assert cmyk[..., 0].mean() > 220 and cmyk[..., 1].mean() < 40
    # every bad input set aside with its reason
    rej = pd.read_csv(tmp_path / "m.rejected.csv", dtype=str, keep_default_na=False)
    by_file = {Path(o).name: r for o, r in zip(rej["origin"], rej["reason"])}
    for name, reason in EXPECTED_REJECTS.items():
        assert by_file.get(name) == reason, (name, by_file.get(name))
    # the copied label file: one of the two is the duplicate (files are read in name order)
    dups = rej[rej["reason"] == "duplicate row"]
    assert len(dups) == 1 and Path(dups["path"].iloc[0]).name == "0001_01_F.jpg"
    assert (rej["reason"] == "other facepart").sum() == 12
    assert len(rej) == len(EXPECTED_REJECTS) + 1 + 12
    for reason in set(EXPECTED_REJECTS.values()) | {"duplicate row", "other facepart"}:
        assert reason in text
    # people all of whose rows were set aside are named
    assert "subjects set aside entirely" in text and "0017" in text
    assert m.df.groupby("subject")["split"].nunique().max() == 1


def test_aihub_needs_label_key(tmp_path):
    root = make_aihub_tree(tmp_path / "aihub")
    with pytest.raises(ConfigError, match="--label"):
        ingest(root, out=tmp_path / "m.csv", quiet=True)
    with pytest.raises(ConfigError, match="did you mean 'annotations.forehead_wrinkle'"):
        ingest(root, out=tmp_path / "m.csv", label="annotations.forehead_wrinkel", quiet=True)


# --------------------------------------------------------------------------- folder per class and tables


def test_folder_per_class_with_bad_files(tmp_path, capsys):
    root = tmp_path / "ages"
    for cls in ("80", "20", "100", "30"):
        for i in range(5):
            make_image(root / cls / f"p{i}_{cls}.jpg", value=int(cls), seed=i, fmt="JPEG")
    (root / "30" / "notes.txt").write_text("x", encoding="utf-8")
    make_image(root / "20" / "broken.png", value=20)
    data = bytearray((root / "20" / "broken.png").read_bytes())
    data[29] ^= 0xFF  # break the header checksum
    (root / "20" / "broken.png").write_bytes(bytes(data))
    (root / "20" / ".DS_Store").write_bytes(b"\0")
    make_image(root / "20" / "얼굴.png", value=20)
    out = tmp_path / "ages.parquet"
    res = ingest(root, out=out, subject_regex=r"^p(\d+)_", quiet=True)
    m = read_manifest(out)
    assert m.classes == ["20", "30", "80", "100"] and m.ordinal
    assert len(m.df) == 21 and len(res) == 21
    assert list(m.df.columns[:12]) == ["path", "label", "class_name", "raw_label", "subject", "view",
                                       "x0", "y0", "x1", "y1", "split", "fold"]
    reasons = dict(zip(res.rejected["path"].map(lambda p: Path(p).name), res.rejected["reason"]))
    assert reasons == {"notes.txt": "non-image", "broken.png": "corrupt"}
    # --subject-regex: p0..p4 are people with an image in every class; 얼굴.png has its own id
    assert set(m.df["subject"]) == {"0", "1", "2", "3", "4", "img:얼굴"}
    assert m.df.groupby("subject")["split"].nunique().max() == 1
    assert "1 system file" in res.summary


def test_folder_without_subjects_says_so(bright_dark_folder, tmp_path, capsys):
    rc = main(["ingest", str(bright_dark_folder), "--out", str(tmp_path / "bd.csv")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "each image is its own group" in text
    m = read_manifest(tmp_path / "bd.csv")
    assert m.classes == ["bright", "dark"] and not m.ordinal
    assert m.df["subject"].nunique() == 24


def test_table_with_bbox_columns_and_image_root(tmp_path):
    imgs = tmp_path / "pics"
    rows = []
    for i in range(12):
        make_image(imgs / "sub" / f"im{i}.png", value=i * 20, size=(40, 30), seed=i)
        rows.append({"img": f"sub/im{i}.png", "grade": i % 3, "who": f"P{i // 2}", "cam": "front",
                     "left": 2, "top": 3, "right": 30, "bottom": 25, "site": "A"})
    rows.append({"img": "sub/im0.png", "grade": 0, "who": "P0", "cam": "front", "left": 2, "top": 3,
                 "right": 30, "bottom": 25, "site": "A"})  # duplicate row
    rows.append({"img": "sub/gone.png", "grade": 1, "who": "P9", "cam": "side", "left": 0, "top": 0,
                 "right": 5, "bottom": 5, "site": "B"})
    rows.append({"img": "sub/im1.png", "grade": 1, "who": "P0", "cam": "side", "left": 0, "top": 0,
                 "right": 0, "bottom": 9, "site": "B"})  # zero-area bbox
    rows.append({"img": "sub/im2.png", "grade": 2, "who": "P1", "cam": "side", "left": -20, "top": 0,
                 "right": 30, "bottom": 28, "site": "B"})  # partly outside: clamped
    table = tmp_path / "labels.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    res = ingest(table, out=tmp_path / "t.csv", path_col="img", label="grade", subject_col="who", view_col="cam",
                 bbox_cols="left,top,right,bottom", image_root=str(imgs), quiet=True)
    df = res.manifest.df
    assert len(df) == 13
    reasons = sorted(res.rejected["reason"])
    assert reasons == ["bbox zero-area", "duplicate row", "missing file"]
    clamped = df[(df["view"] == "side")].iloc[0]
    assert (clamped.x0, clamped.x1) == (0, 30)
    assert "1 clamped to the image" in res.summary
    assert df.loc[0, "site"] == "A" and set(df["view"]) == {"front", "side"}
    # a column name that does not exist: did you mean
    with pytest.raises(ConfigError, match="did you mean 'grade'"):
        ingest(table, out=tmp_path / "t.csv", label="grad", image_root=str(imgs), quiet=True)


def test_unknown_flag_and_option_did_you_mean(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["ingest", str(tmp_path), "--out", "x.csv", "--remapp", "0:0"])
    assert "did you mean '--remap'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="did you mean 'labels_only'"):
        ingest(tmp_path, out=tmp_path / "x.csv", label_only=True)


def test_format_detection_and_python_api(tmp_path, bright_dark_folder):
    import skinage

    assert skinage.ingest is ingest
    assert detect_format(bright_dark_folder) == "folder"
    # one images/ folder beside a label table: the table describes the images
    root = tmp_path / "people"
    make_image(root / "images" / "a.png")
    pd.DataFrame({"file": ["images/a.png"], "label": ["x"]}).to_csv(root / "labels.csv", index=False)
    assert detect_format(root) == "table"
    assert detect_format(root / "labels.csv") == "table"
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "absent")


def test_folds_flag(bright_dark_folder, tmp_path):
    res = ingest(bright_dark_folder, out=tmp_path / "f.csv", folds=3, test=0.0, subject_regex=r"^p(\d+)_", quiet=True)
    df = res.manifest.df
    assert set(df["fold"]) == {0, 1, 2}
    assert df.groupby("subject")["fold"].nunique().max() == 1


# --------------------------------------------------------------------------- the real data ("Must show")


@pytest.mark.realdata
def test_real_utkface_folder(tmp_path, capsys):
    src = shared_data("utkface-age")
    out = tmp_path / "m.csv"
    assert main(["ingest", str(src), "--out", str(out)]) == 0
    capsys.readouterr()
    m = read_manifest(out)
    assert len(m.df) == 3700
    assert m.classes == ["10", "20", "30", "40", "50", "60", "70"]
    counts = m.df["class_name"].value_counts()
    assert [counts[c] for c in m.classes] == [500, 800, 700, 500, 500, 400, 300]
    frac = m.df["split"].value_counts(normalize=True)
    assert abs(frac["train"] - 0.70) < 0.03 and abs(frac["val"] - 0.15) < 0.03 and abs(frac["test"] - 0.15) < 0.03


@pytest.mark.realdata
def test_real_london_table(tmp_path, capsys):
    table = shared_data("london-5view") / "labels.csv"
    out = tmp_path / "london.csv"
    # age in three bins (<25, 25-29, 30+: 42 / 27 / 31 people); '=' because the value starts with '-'
    assert main(["ingest", str(table), "--label", "age", "--bins=-inf,25,30,inf", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    m = read_manifest(out)
    df = m.df
    assert len(df) == 500 and df["subject"].nunique() == 100
    assert m.classes == ["<25", "25-29", "30+"] and m.ordinal
    people = df.drop_duplicates("subject")["class_name"].value_counts()
    assert [people[c] for c in m.classes] == [42, 27, 31]
    rej = pd.read_csv(tmp_path / "london.rejected.csv", dtype=str, keep_default_na=False)
    assert len(rej) == 10 and set(rej["reason"]) == {"missing label"} and set(rej["subject"]) == {"031", "135"}
    # 102 people read: 100 kept + the 2 age-less ones, named in the summary
    assert len(set(df["subject"]) | set(rej["subject"])) == 102
    assert "subjects set aside entirely (all their rows rejected): 2: 031, 135" in text
    assert df.groupby("subject")["split"].nunique().max() == 1
    assert set(df["view"]) == {"left_profile", "left_3quarter", "front", "right_3quarter", "right_profile"}
    assert all(Path(p).is_file() for p in df["path"])


@pytest.mark.realdata
def test_real_aihub_label_table(tmp_path, capsys):
    table = shared_data("aihub-forehead-labels") / "json_to_dataframe.csv"
    out = tmp_path / "aihub.csv"
    rc = main(["ingest", str(table), "--labels-only", "--label", "forehead_wrinkle", "--facepart", "1",
               "--remap", REMAP, "--out", str(out)])
    assert rc == 0
    capsys.readouterr()
    m = read_manifest(out)
    df = m.df
    assert len(df) == 4825 and df["subject"].nunique() == 965
    counts = df["class_name"].value_counts()
    assert [counts[c] for c in ["0", "1", "2", "3"]] == [1965, 1960, 380, 520]
    # agrees with the source project's own 4-level column
    assert (df["label"] == pd.to_numeric(df["adj_forehead_wrinkle_2"]).astype(int)).all()
    assert df.groupby("subject")["split"].nunique().max() == 1
    assert df[["x0", "y0", "x1", "y1"]].notna().all(axis=None)
    assert df.loc[0, "subject"] == "0001" and set(df["view"]) == {"F", "L15", "L30", "R15", "R30"}
    # without --labels-only the missing images are refused, and the message says what to do
    rc = main(["ingest", str(table), "--label", "forehead_wrinkle", "--out", str(tmp_path / "x.csv")])
    assert rc == 1
    assert "--labels-only" in capsys.readouterr().err


def test_manifest_dataset_from_ingest(bright_dark_folder, tmp_path):
    import torch
    from torch.utils.data import DataLoader

    from skinage.data.dataset import ManifestDataset
    from skinage.preprocess import Preprocess
    from skinage.data.images import CropCache

    res = ingest(bright_dark_folder, out=tmp_path / "bd.csv", quiet=True)
    m = read_manifest(tmp_path / "bd.csv")
    cache = CropCache(tmp_path / "crops")
    ds = ManifestDataset(m, Preprocess(size=24), cache=cache, transform=lambda x: x.flip(-1))
    assert len(ds) == 24
    xs, ys = next(iter(DataLoader(ds, batch_size=24, shuffle=False)))
    assert xs.shape == (24, 3, 24, 24) and xs.dtype == torch.uint8
    assert ys.tolist() == m.df["label"].tolist()
    # bright images are bright, dark ones dark: the label matches the pixels
    means = xs.float().mean(dim=(1, 2, 3))
    bright = m.classes.index("bright")
    assert all((mu > 128) == (y == bright) for mu, y in zip(means.tolist(), ys.tolist()))
    assert cache.misses == 24 and cache.hits == 0
    for i in range(len(ds)):
        ds[i]
    assert cache.hits == 24
    train = ManifestDataset(m.split("train"), Preprocess(size=24), cache=None)
    assert len(train) == (m.df["split"] == "train").sum()


def test_labels_only_table_checks_bbox_against_width_height(tmp_path):
    table = tmp_path / "t.csv"
    pd.DataFrame({
        "image_name": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
        "forehead_wrinkle": ["1.0", "3.0", "6.0", "2.0"],
        "id": ["0001", "0002", "0003", "0004"],
        "width": [100, 100, 100, 100], "height": [200, 200, 200, 200],
        "bbox_x_min": [10, 10, 300, 10], "bbox_y_min": [10, 10, 300, 50],
        "bbox_x_max": [90, 120, 400, 90], "bbox_y_max": [50, 50, 400, 40],
    }).to_csv(table, index=False)
    res = ingest(table, out=tmp_path / "m.csv", labels_only=True, label="forehead_wrinkle", remap=REMAP, quiet=True)
    df = res.manifest.df
    assert list(df["subject"]) == ["0001", "0002"]  # ids keep their leading zeros
    assert df.loc[1, "x1"] == 100  # clamped to the table's width
    assert dict(zip(res.rejected["subject"], res.rejected["reason"])) == {"0003": "bbox outside image", "0004": "bbox inverted"}


def test_records_frame_types_as_a_list_of_row_dicts():
    """records_frame (one tuple per row) infers every column's type as pandas does for one dict per row."""
    import math

    from skinage.data.records import Record, records_frame

    metas = [{"age": 40, "gender": "F", "ok": True, "x0": 5, "when": None},
             {"age": None, "score": 1.5, "ok": False},
             {"age": 31, "gender": None, "device": "01", "nested": [1, 2]},
             {"width": 640, "score": 2},
             {}]
    sizes = [None, (300, 200), None, (64, 48), (50, 40)]  # what the image check found
    recs = []
    for i, m in enumerate(metas):
        r = Record.of(f"/d/{i}.jpg", str(i % 2), subject=f"s{i}" if i != 4 else None, view=" F " if i else "",
                      bbox=(1, 2, 3.5, 4) if i % 2 else None, origin=f"t.csv:row {i + 2}", **m)
        r.class_name, r.size = str(i % 2), sizes[i]
        recs.append(r)
    got = records_frame(recs, ["0", "1"])
    rows = []
    for r in recs:  # the manifest row of each record, written out by hand
        b = r.bbox or (math.nan,) * 4
        row = {"path": r.path, "label": int(r.class_name), "class_name": r.class_name, "raw_label": r.raw_label,
               "subject": r.subject, "view": r.view.strip(), "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3]}
        row.update({("src_x0" if k == "x0" else k): v for k, v in r.meta.items()})
        if r.size:  # the image's size where the source gave none, after the source's fields
            row.setdefault("width", r.size[0])
            row.setdefault("height", r.size[1])
        rows.append(row)
    want = pd.DataFrame(rows)
    assert list(got.columns) == list(want.columns)
    assert list(got.columns[10:]) == ["age", "gender", "ok", "src_x0", "when", "score", "width", "height",
                                      "device", "nested"]
    assert got["width"].tolist()[1::2] == [300, 640] and got.loc[4, "width"] == 50 and got["height"].tolist()[3:] == [48, 40]
    pd.testing.assert_frame_equal(got, want)
    assert str(got["age"].dtype) == "float64" and got["ok"].dtype == object and str(got["width"].dtype) == "float64"
    assert len(records_frame([], ["0"]).columns) == 10


def _bad_and_good_folder(root: Path) -> dict:
    """60 images in 2 class folders, every fifth unusable in a different way; {file name: reason} of the bad ones."""
    bad = {}
    kinds = [("truncated", lambda b: b[: len(b) // 3]), ("zero-byte file", lambda b: b""),
             ("non-image", lambda b: b"plain text, not a JPEG")]
    for i in range(60):
        p = make_image(root / ("a" if i % 2 else "b") / f"p{i:02d}_x.jpg", value=3 * i, seed=i, fmt="JPEG")
        if i % 5 == 4:
            reason, spoil = kinds[(i // 5) % len(kinds)]
            p.write_bytes(spoil(p.read_bytes()))
            bad[p.name] = reason
    return bad


def test_bounded_probing_reports_every_bad_image_in_order(tmp_path, monkeypatch):
    """At most `ahead` files are submitted before their results are taken; every bad image is set aside, in order."""
    from concurrent.futures import ThreadPoolExecutor

    import skinage.data.checks as checks

    bad = _bad_and_good_folder(tmp_path / "src")
    submitted = []

    class Counting(ThreadPoolExecutor):
        def submit(self, fn, *a, **k):
            submitted.append(a[0])
            return super().submit(fn, *a, **k)

    monkeypatch.setattr(checks, "ThreadPoolExecutor", Counting)
    paths = sorted(str(p) for p in (tmp_path / "src").rglob("*.jpg"))
    got = []
    for i, (p, info) in enumerate(checks.iter_probes(paths, workers=2, ahead=3)):
        assert len(submitted) <= i + 3  # never more than `ahead` files waiting to be taken
        got.append((Path(p).name, info.reason if isinstance(info, checks.ImageError) else None))
    assert [p for p, _ in got] == [Path(p).name for p in paths] and len(submitted) == len(paths)
    assert {n: r for n, r in got if r} == bad
    # through ingest (3 threads, default window): the rejected file lists them in the source's order
    res = ingest(tmp_path / "src", out=tmp_path / "m.csv", workers=3, quiet=True)
    order = [n for n in sorted(bad, key=lambda n: ("a" if int(n[1:3]) % 2 else "b", n))]
    assert res.rejected["path"].map(lambda p: Path(p).name).tolist() == order
    assert res.rejected["reason"].tolist() == [bad[n] for n in order]
    assert len(res.manifest.df) == 60 - len(bad)
    assert {"width", "height"} <= set(res.manifest.df.columns) and (res.manifest.df["width"] == 48).all()


def test_parquet_manifest_round_trip(tmp_path, monkeypatch):
    """The same source as CSV and as Parquet: the same table back (types, NaN boxes, metadata columns), and again."""
    import skinage.data.ingest as ingest_module
    from skinage.data.manifest import write_manifest

    imgs = tmp_path / "pics"
    rows = []
    for i in range(20):
        make_image(imgs / f"im{i}.png", value=i * 10, size=(40, 30), seed=i)
        rows.append({"img": f"im{i}.png", "grade": i % 4, "who": f"00{i // 2}", "age": 20 + i if i % 3 else "",
                     "x0": 2 if i % 2 else "", "y0": 3 if i % 2 else "", "x1": 30 if i % 2 else "",
                     "y1": 25 if i % 2 else "", "site": "Seoul" if i < 10 else "부산"})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    monkeypatch.setattr(ingest_module, "LARGE_MANIFEST_ROWS", 10)
    kw = dict(path_col="img", label="grade", subject_col="who", quiet=True)
    a = ingest(tmp_path / "labels.csv", out=tmp_path / "m.csv", **kw)
    b = ingest(tmp_path / "labels.csv", out=tmp_path / "m.parquet", **kw)
    assert any("m.parquet writes a smaller manifest" in n for n in a.manifest.meta["notes"])
    assert not any("parquet writes" in n for n in b.manifest.meta["notes"])
    csv_back, pq_back = read_manifest(tmp_path / "m.csv"), read_manifest(tmp_path / "m.parquet")
    pd.testing.assert_frame_equal(pq_back.df, csv_back.df)
    df = pq_back.df
    assert df["subject"].tolist()[:3] == ["000", "000", "001"]  # ids keep their leading zeros
    assert df["x0"].isna().sum() == 10 and df["age"].isna().sum() == 7 and set(df["site"]) == {"Seoul", "부산"}
    assert pq_back.classes == ["0", "1", "2", "3"] and pq_back.ordinal
    write_manifest(pq_back, tmp_path / "again.parquet")
    pd.testing.assert_frame_equal(read_manifest(tmp_path / "again.parquet").df, df)
