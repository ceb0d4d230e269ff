//! Fuzzes the dataset readers. The first byte picks the reader, the rest is the file: KonIQ CSVs, KADID / pyiqa
//! CSVs, Q-Align JSON, conversation JSON, synth manifests, SPAQ / CSIQ spreadsheets, LIVE Challenge MAT-files.
#![no_main]

use biqa_data::{
    KoniqScore, LiveChallengeOptions, Scale, read_conversations, read_csiq, read_kadid, read_koniq,
    read_koniq_sets, read_live_challenge, read_pyiqa, read_qalign_json, read_spaq,
    read_synth_manifest,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    match pick % 11 {
        0 => drop(read_koniq(&biqa_fuzz::put("k.csv", body), KoniqScore::Mos)),
        1 => drop(read_koniq(
            &biqa_fuzz::put("k.csv", body),
            KoniqScore::MosZscore,
        )),
        2 => drop(read_koniq_sets(&biqa_fuzz::put("ks.csv", body))),
        3 => drop(read_kadid(&biqa_fuzz::put("dmos.csv", body))),
        4 => drop(read_pyiqa(
            &biqa_fuzz::put("meta.csv", body),
            Scale::one_to_five(),
            Some("split"),
        )),
        5 => drop(read_qalign_json(
            &biqa_fuzz::put("q.json", body),
            Scale::one_to_five(),
        )),
        6 => drop(read_conversations(&biqa_fuzz::put("c.json", body))),
        7 => drop(read_synth_manifest(&biqa_fuzz::put("s.json", body))),
        8 => drop(read_spaq(&biqa_fuzz::put("spaq.xlsx", body))),
        9 => drop(read_csiq(&biqa_fuzz::put("csiq.xlsx", body))),
        _ => {
            let images = biqa_fuzz::put("images.mat", body);
            let mos = biqa_fuzz::put("mos.mat", body);
            drop(read_live_challenge(
                &images,
                &mos,
                LiveChallengeOptions { skip: 0 },
            ));
        }
    }
});
