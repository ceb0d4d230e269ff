#!/usr/bin/env python3
"""Write the small format-exact annotation samples of tests/fixtures/data-cases/ (biqa-data reader tests).

The header lines and cell formats copy the public annotation files (docs/iqa-conventions.md section 4): KonIQ-10k
`koniq10k_scores_and_distributions.csv` and `koniq10k_distributions_sets.csv`, KADID-10k `dmos.csv`, a pyiqa
meta-info CSV, Q-Align train/test JSON and Q-Instruct LLaVA JSON; SPAQ `MOS and Image attribute scores.xlsx` and
CSIQ `csiq.DMOS.xlsx` (openpyxl), LIVE Challenge `AllImages_release.mat` / `AllMOS_release.mat` (scipy.io.savemat,
MAT-file level 5). Each has a `bad_*` twin with one malformed cell (or, for the .mat files, a missing variable).
Run from the repository root: python3 scripts/gen_data_cases.py   (needs: pip install openpyxl scipy)
"""
import json
from pathlib import Path

import numpy as np
import openpyxl
import scipy.io

OUT = Path("tests/fixtures/data-cases")
OUT.mkdir(parents=True, exist_ok=True)


def write(name, text):
    (OUT / name).write_text(text, newline="")


koniq = (
    "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore\r\n"
    "10004473376.jpg,0,0,25,73,7,105,3.828571429,0.527278225,77.38362069\r\n"
    "10007357496.jpg,0,3,45,47,1,96,3.479166667,0.565771304,68.62023506\r\n"
    "10007903636.jpg,1,0,20,73,9,103,3.859223301,0.577350269,78.27067063\r\n"
    "10009096245.jpg,0,0,21,75,7,103,3.854368932,0.499286987,77.75016818\r\n"
)
write("koniq10k_scores_and_distributions.csv", koniq)
write("bad_koniq10k_scores_and_distributions.csv", koniq.replace("68.62023506", "n/a"))

sets = (
    "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set\n"
    "10004473376.jpg,0,0,0.238095238,0.695238095,0.066666667,105,70.71428571,13.18195562,training\n"
    "10007357496.jpg,0,0.03125,0.46875,0.489583333,0.010416667,96,61.97916667,14.14428261,validation\n"
    "10007903636.jpg,0.009708738,0,0.194174757,0.708737864,0.087378641,103,71.48058252,14.43375673,test\n"
)
write("koniq10k_distributions_sets.csv", sets)
write("bad_koniq10k_distributions_sets.csv", sets.replace("validation", "holdout"))

kadid = (
    "dist_img,ref_img,dmos,var\n"
    "I01_01_01.png,I01.png,4.57,0.496\n"
    "I01_01_02.png,I01.png,4.33,0.869\n"
    "I01_01_03.png,I01.png,2.67,0.789\n"
    "I02_01_01.png,I02.png,4.6,0.573\n"
    "I02_01_02.png,I02.png,4.47,0.671\n"
    "I03_01_01.png,I03.png,4.43,0.737\n"
)
write("dmos.csv", kadid)
write("bad_dmos.csv", kadid.replace("2.67", ""))

pyiqa = (
    "img_name,mos,std,official_split,ratio802_seed123_split01\n"
    "1.jpg,63.9634,18.0,train,train\n"
    "2.jpg,25.3353,17.3,train,val\n"
    "3.jpg,48.9366,16.7,test,test\n"
    "4.jpg,35.8863,20.1,,train\n"
)
write("meta_info_LIVEChallengeDataset.csv", pyiqa)
write("bad_meta_info_LIVEChallengeDataset.csv", pyiqa.replace("48.9366", "4x.9"))

qalign = [
    {"id": "10004473376.jpg->77.3836", "image": "10004473376.jpg",
     "conversations": [{"from": "human", "value": "How would you rate the quality of this image?\n<|image|>"},
                       {"from": "gpt", "value": "The quality of the image is excellent."}],
     "gt_score": 77.38362069},
    {"id": "10007357496.jpg->68.6202", "img_path": "10007357496.jpg", "gt_score": 68.62023506},
    {"id": "I66_01_01.png->4.63", "image": "kadid10k/images/I66_01_01.png"},
]
write("qalign_test.json", json.dumps(qalign, indent=2) + "\n")
bad = [dict(q) for q in qalign]
del bad[2]["image"]
write("bad_qalign_test.json", json.dumps(bad, indent=2) + "\n")

qinstruct = [
    {"id": "spaq_koniq/00001.jpg->0", "image": "spaq_koniq/00001.jpg",
     "conversations": [{"from": "human", "value": "<image>\nHow is the clarity of the image?"},
                       {"from": "gpt", "value": "The image is slightly blurry, so the quality is poor."}]},
    {"id": 2, "img_path": "livefb_liveitw_aigc/0002.jpg",
     "conversations": [{"from": "human", "value": "<image>\nDescribe the quality of the image."},
                       {"from": "gpt", "value": "The lighting is sufficient. Therefore, the quality is good."}]},
]
write("qinstruct_labels.json", json.dumps(qinstruct, indent=2) + "\n")


def xlsx(name, sheets):
    """Writes a workbook of (title, rows) sheets, the first row being the header."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets:
        ws = wb.create_sheet(title)
        for r in rows:
            ws.append(r)
    wb.save(OUT / name)


# SPAQ: sheet 0, numbers as number cells (the real file has 11 125 rows).
spaq = [
    ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"],
    ["00001.jpg", 42.4, 44.8, 32.2, 43.8, 51.6, 45.2],
    ["00002.jpg", 57.2, 61.0, 52.2, 56.8, 56.2, 59.4],
    ["00003.jpg", 93.67, 89.0, 88.2, 90.4, 86.4, 92.6],
]
xlsx("MOS and Image attribute scores.xlsx", [("Sheet1", spaq)])
bad_spaq = [list(r) for r in spaq]
bad_spaq[2][1] = "n/a"  # spreadsheet row 3, column MOS
xlsx("bad_MOS and Image attribute scores.xlsx", [("Sheet1", bad_spaq)])

# CSIQ: the scores are in sheet `all_by_image` (not the first); numeric image names are number cells.
csiq_all = [
    ["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"],
    [1600, 1, "noise", 1, 0.061, 0.062],
    [1600, 1, "noise", 2, 0.045, 0.206],
    [1600, 2, "jpeg", 3, 0.064, 0.358],
    ["aerial_city", 3, "jpeg 2000", 1, 0.046, 0.071],
    ["aerial_city", 4, "fnoise", 5, 0.085, 0.652],
    ["aerial_city", 5, "blur", 4, 0.071, 0.521],
    ["boston", 6, "contrast", 2, 0.052, 0.137],
]
csiq_sheets = [("note", [["CSIQ DMOS"]]), ("all_by_image", csiq_all), ("all_by_distortion", csiq_all[:1])]
xlsx("csiq.DMOS.xlsx", csiq_sheets)
bad_csiq = [list(r) for r in csiq_all]
bad_csiq[4][5] = "?"  # spreadsheet row 5, column dmos
xlsx("bad_csiq.DMOS.xlsx", [("note", [["CSIQ DMOS"]]), ("all_by_image", bad_csiq)])

# LIVE Challenge: a cell array of names (shape (n, 1), as the release) and a 1 x n double array. The first 7
# entries are the training images t1..t7.
names = [f"t{i}.bmp" for i in range(1, 8)] + ["3.bmp", "4.bmp", "5.bmp"]
mos = [63.9634, 25.3353, 48.9366, 35.8863, 66.5092, 74.4107, 39.8113, 55.5281, 14.4426, 92.4324]
cell = np.empty((len(names), 1), dtype=object)
for i, n in enumerate(names):
    cell[i, 0] = np.array([n])
mos_arr = np.array([mos], dtype=np.float64)
scipy.io.savemat(OUT / "AllImages_release.mat", {"AllImages_release": cell})
scipy.io.savemat(OUT / "AllMOS_release.mat", {"AllMOS_release": mos_arr})
# The same, compressed (MATLAB's default -v7), with a second variable before the wanted one.
scipy.io.savemat(OUT / "AllMOS_release_compressed.mat",
                 {"AllStdDev_release": mos_arr / 4, "AllMOS_release": mos_arr}, do_compression=True)
scipy.io.savemat(OUT / "bad_AllMOS_release.mat", {"AllStdDev_release": mos_arr / 4})

print("wrote", sorted(p.name for p in OUT.iterdir()))
