#!/usr/bin/env python3
"""Write the small format-exact annotation samples of tests/fixtures/data-cases/ (biqa-data reader tests).

The header lines and cell formats copy the public annotation files (docs/iqa-conventions.md section 4): KonIQ-10k
`koniq10k_scores_and_distributions.csv` and `koniq10k_distributions_sets.csv`, KADID-10k `dmos.csv`, a pyiqa
meta-info CSV, Q-Align train/test JSON and Q-Instruct LLaVA JSON. Each has a `bad_*` twin with one malformed cell.
Run from the repository root: python3 scripts/gen_data_cases.py
"""
import json
from pathlib import Path

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
print("wrote", sorted(p.name for p in OUT.iterdir()))
