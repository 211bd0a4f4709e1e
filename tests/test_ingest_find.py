"""`skinage ingest --find`: boxes from the face finder, refused photos with the finder's status, the content cache."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from conftest import shared_data
from find_helpers import side_by_side

import skinage
from skinage.config import ConfigError
from skinage.data.ingest import ingest

pytest.importorskip("onnxruntime")


def make_photo_folder(root: Path) -> Path:
    """Class folders 20/ and 30/: good UTKFace and london photos, a photo without a face, a profile, two faces side
    by side and a truncated JPEG."""
    utk, london = shared_data("utkface-age"), shared_data("london-5view") / "images"
    for cls, folder in (("20", "20"), ("30", "30")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for p in sorted((utk / folder).glob("*.jpg"))[:3]:
            (root / cls / p.name).write_bytes(p.read_bytes())
    for name in ("004_03.jpg", "005_03.jpg"):
        (root / "30" / name).write_bytes((london / name).read_bytes())
    Image.new("RGB", (320, 240), (90, 140, 200)).save(root / "20" / "sky.jpg")
    (root / "30" / "profile_010_01.jpg").write_bytes((london / "010_01.jpg").read_bytes())
    side_by_side(Image.open(london / "001_03.jpg"), Image.open(london / "002_03.jpg")).save(root / "20" / "two.jpg")
    (root / "20" / "truncated.jpg").write_bytes((london / "011_03.jpg").read_bytes()[:5000])
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("find-ingest") / "photos")


def test_ingest_find_sets_refused_photos_aside_with_the_finders_status(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINAGE_CACHE", str(tmp_path / "cache"))  # an empty cache: everything is found now
    res = ingest(photos, out=tmp_path / "m.csv", find="face", quiet=True)
    rej = pd.read_csv(res.rejected_path).set_index("path")
    reasons = {Path(p).name: r for p, r in rej["reason"].items()}
    assert reasons == {"sky.jpg": "no_face", "profile_010_01.jpg": "no_face", "two.jpg": "several_faces",
                       "truncated.jpg": "truncated"}  # the truncated file is set aside by the image check first
    details = {Path(p).name: d for p, d in rej["detail"].items()}
    assert "profile" in details["profile_010_01.jpg"] and "comparable size" in details["two.jpg"]
    df = res.manifest.df
    assert len(df) == 8
    for row in df.itertuples():  # every kept row carries the finder's face box of its image
        found = skinage.find(row.path)
        assert found.status == "ok"
        assert (row.x0, row.y0, row.x1, row.y1) == pytest.approx(found[0].box, abs=1e-9)
    meta = json.loads(tmp_path.joinpath("m.meta.json").read_text())
    assert meta["region"] == "face"
    assert meta["finder"]["statuses"]["ok"] == 8 and meta["finder"]["statuses"]["several_faces"] == 1
    assert meta["finder"]["found_now"] == 11 and meta["finder"]["cache_hits"] == 0
    assert meta["rejected"] == {"truncated": 1, "no_face": 2, "several_faces": 1}


def test_second_ingest_reads_the_cache_and_forehead_boxes(photos, tmp_path):
    first = ingest(photos, out=tmp_path / "a.csv", find="face", quiet=True)
    again = ingest(photos, out=tmp_path / "b.csv", find="forehead", quiet=True)
    meta = json.loads(tmp_path.joinpath("b.meta.json").read_text())
    assert meta["region"] == "forehead" and meta["finder"]["found_now"] == 0 and meta["finder"]["cache_hits"] == 11
    a, b = first.manifest.df.set_index("path"), again.manifest.df.set_index("path")
    assert list(a.index) == list(b.index)
    for path in a.index:
        face, forehead = a.loc[path, ["x0", "y0", "x1", "y1"]], b.loc[path, ["x0", "y0", "x1", "y1"]]
        assert forehead["y1"] <= face["y0"] + 0.6 * (face["y1"] - face["y0"])  # the forehead is in the upper face
        assert list(forehead) == pytest.approx(list(skinage.find(path)[0].forehead), abs=1e-9)
    files = list(Path(skinage.utils.cache_dir() / "find").rglob("*.json"))
    assert len(files) >= 11 and {"status", "reason", "face", "forehead"} <= set(json.loads(files[0].read_text()))


def test_found_boxes_replace_the_boxes_of_a_table_and_only_when_asked(tmp_path):
    utk = sorted((shared_data("utkface-age") / "30").glob("*.jpg"))[:4]
    table = pd.DataFrame({"path": [str(p) for p in utk], "label": ["a", "b", "a", "b"],
                          "x0": 10.0, "y0": 10.0, "x1": 60.0, "y1": 60.0})
    table.to_csv(tmp_path / "t.csv", index=False)
    given = ingest(tmp_path / "t.csv", out=tmp_path / "given.csv", quiet=True).manifest.df
    assert (given[["x0", "y0", "x1", "y1"]].to_numpy() == [10, 10, 60, 60]).all()
    res = ingest(tmp_path / "t.csv", out=tmp_path / "found.csv", find="face", quiet=True)
    found = res.manifest.df.set_index("path")
    for p in utk:
        assert list(found.loc[str(p), ["x0", "y0", "x1", "y1"]]) == pytest.approx(list(skinage.find(p)[0].box))
    assert any("replaced" in n for n in res.manifest.meta["notes"])
    with pytest.raises(ConfigError, match="labels-only"):
        ingest(tmp_path / "t.csv", out=tmp_path / "x.csv", find="face", labels_only=True, quiet=True)
