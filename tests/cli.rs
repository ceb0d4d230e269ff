//! The `biqa` binary end to end: output keys, values against the SciPy fixture, exit codes and one-line errors.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use biqa_testkit::fixture_json;
use serde_json::Value;

fn biqa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_biqa"))
        .args(args)
        .output()
        .expect("the biqa binary runs")
}

fn fixture_case(name: &str) -> Result<(Vec<f64>, Vec<f64>, Value)> {
    let json = fixture_json("metrics/metrics.json")?;
    let case = json["cases"]
        .as_array()
        .context("cases")?
        .iter()
        .find(|c| c["name"] == name)
        .context("case")?
        .clone();
    let v = |k: &str| {
        case[k]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
    };
    Ok((v("pred").context("pred")?, v("mos").context("mos")?, case))
}

fn write_csv(dir: &Path, name: &str, text: &str) -> Result<String> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p.to_string_lossy().into_owned())
}

#[test]
fn metrics_json_matches_scipy() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (pred, mos, case) = fixture_case("noisy_logistic_n200")?;
    let mut csv = String::from("image,score,gt\n");
    for (i, (p, m)) in pred.iter().zip(&mos).enumerate() {
        csv.push_str(&format!("img{i}.png,{p},{m}\n"));
    }
    let file = write_csv(dir.path(), "pred.csv", &csv)?;
    let out = biqa(&["metrics", &file, "--pred", "score", "--mos", "gt", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout)?;
    let obj = json.as_object().context("object")?;
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "krcc",
            "n",
            "plcc",
            "plcc_logistic",
            "rmse_logistic",
            "srcc"
        ]
    );
    assert_eq!(json["n"], 200);
    let close = |k: &str, fk: &str, tol: f64| {
        let (g, w) = (
            json[k].as_f64().unwrap_or(f64::NAN),
            case[fk].as_f64().unwrap_or(f64::NAN),
        );
        assert!((g - w).abs() <= tol, "{k}: {g} vs {w}");
    };
    close("srcc", "srcc", 1e-9);
    close("plcc", "plcc_raw", 1e-9);
    close("krcc", "krcc_tau_b", 1e-9);
    close("plcc_logistic", "plcc_fitted", 1e-6);
    close("rmse_logistic", "rmse_fitted", 1e-6);

    // The table form names every metric.
    let out = biqa(&["metrics", &file, "--pred", "score", "--mos", "gt"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout)?;
    for k in [
        "n ",
        "srcc",
        "plcc ",
        "plcc_logistic",
        "krcc",
        "rmse_logistic",
    ] {
        assert!(text.contains(k), "{text}");
    }
    Ok(())
}

#[test]
fn small_n_has_no_logistic_fit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = write_csv(dir.path(), "p.csv", "pred,mos\n1,2\n2,1\n3,3\n")?;
    let out = biqa(&["metrics", &file, "--json"]);
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout)?;
    assert!(json["plcc_logistic"].is_null() && json["rmse_logistic"].is_null());
    assert!((json["srcc"].as_f64().context("srcc")? - 0.5).abs() < 1e-12);
    Ok(())
}

#[test]
fn errors_are_one_line_and_name_the_cell() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = write_csv(
        dir.path(),
        "bad.csv",
        "pred,mos\n0.1,1\n0.2,2\n0.x,3\n0.4,4\n",
    )?;
    let out = biqa(&["metrics", &file]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.csv") && err.contains("line 4") && err.contains("\"pred\""),
        "{err}"
    );

    let constant = write_csv(dir.path(), "const.csv", "pred,mos\n1,1\n1,2\n1,3\n1,4\n")?;
    let out = biqa(&["metrics", &constant]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("constant"));

    let out = biqa(&["metrics", "/nonexistent/file.csv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("/nonexistent/file.csv"));

    let out = biqa(&["metrics", &file, "--pred", "prediction"]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("no column named \"prediction\""));
    Ok(())
}

#[test]
fn instability_json() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut csv = String::from("sample,session,answer\n");
    // Session 1: sample a stable (good ×3), sample b unstable (poor, fair, poor).
    // Session 2: both stable; session 3: sample a has an unparseable answer.
    for (s, a, b) in [
        (
            "1",
            ["good", "The quality is good.", "good"],
            ["poor", "fair", "poor"],
        ),
        ("2", ["good", "good", "good"], ["poor", "poor", "poor"]),
        (
            "3",
            ["good", "I am not sure", "good"],
            ["poor", "poor", "poor"],
        ),
    ] {
        for t in a {
            csv.push_str(&format!("a,{s},{t}\n"));
        }
        for t in b {
            csv.push_str(&format!("b,{s},{t}\n"));
        }
    }
    let file = write_csv(dir.path(), "answers.csv", &csv)?;
    let out = biqa(&["instability", &file, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout)?;
    let mut keys: Vec<&str> = json
        .as_object()
        .context("object")?
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "answer_level_mean",
            "answer_level_std",
            "invalid_rate",
            "sample_level_mean",
            "sample_level_std",
            "sessions"
        ]
    );
    let f = |k: &str| json[k].as_f64().unwrap_or(f64::NAN);
    // Per session sample-level: 0.5, 0, 0.5 → mean 1/3, std (ddof 1) = sqrt(1/12).
    assert!((f("sample_level_mean") - 1.0 / 3.0).abs() < 1e-12);
    assert!((f("sample_level_std") - (1.0f64 / 12.0).sqrt()).abs() < 1e-12);
    // Answer-level: 1/6, 0, 1/6.
    assert!((f("answer_level_mean") - 1.0 / 9.0).abs() < 1e-12);
    assert!((f("invalid_rate") - 1.0 / 18.0).abs() < 1e-12);
    assert_eq!(json["sessions"].as_array().context("sessions")?.len(), 3);
    assert_eq!(json["sessions"][0]["session"], "1");

    let bad = write_csv(dir.path(), "bad.csv", "sample,answer\na,good\n")?;
    let out = biqa(&["instability", &bad]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("session"));
    Ok(())
}

#[test]
fn info_runs() {
    let out = biqa(&["info"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("flex"));
}

/// `tests/fixtures/<rel>` as a command-line argument.
fn fixture(rel: &str) -> String {
    biqa_testkit::fixture(rel).display().to_string()
}

#[test]
fn score_describe_generate_convert() -> Result<()> {
    let model = fixture("tiny-owl2");
    let (a, c) = (
        fixture("tiny-owl2/images/astronaut_96x96.png"),
        fixture("tiny-owl2/images/coffee_96x64.png"),
    );
    let out = biqa(&[
        "score",
        "--model",
        &model,
        &a,
        &c,
        "--json",
        "--batch-size",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout)?;
    let rows = json.as_array().context("array")?;
    assert_eq!(rows.len(), 2);
    for (row, want) in rows.iter().zip([0.580386757850647, 0.6240459680557251]) {
        let mut keys: Vec<&str> = row
            .as_object()
            .context("object")?
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["image", "probs", "score", "score_1_5"]);
        assert!((row["score"].as_f64().context("score")? - want).abs() < 1e-4);
        assert_eq!(row["probs"].as_object().context("probs")?.len(), 5);
    }

    let out = biqa(&[
        "describe",
        "--model",
        &model,
        &c,
        "--max-new-tokens",
        "12",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout)?;
    let ids: Vec<u64> = json["token_ids"]
        .as_array()
        .context("ids")?
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(ids, [433, 88, 81, 195, 441, 277, 88, 81, 232, 4, 335, 414]);
    assert_eq!(json["stop_reason"], "max_tokens");

    let out = biqa(&[
        "generate",
        "--model",
        &fixture("tiny-llama-gqa"),
        "--prompt",
        "USER: How would you rate the quality of this image?",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout)?;
    let ids: Vec<u64> = json["token_ids"]
        .as_array()
        .context("ids")?
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(ids, [338, 115, 420, 2]);
    assert_eq!(json["stop_reason"], "eos");

    let dir = tempfile::tempdir()?;
    let out_dir = dir.path().join("converted");
    let out = biqa(&[
        "convert",
        "--model",
        &model,
        "--out",
        &out_dir.to_string_lossy(),
        "--shard-size",
        "1000000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out_dir.join("model.safetensors.index.json").is_file());
    let out = biqa(&["score", "--model", &out_dir.to_string_lossy(), &c, "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout)?;
    assert!((json[0]["score"].as_f64().context("score")? - 0.6240459680557251).abs() < 1e-4);

    let out = biqa(&["score", "--model", &fixture("tiny-llama-gqa"), &c]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("text-only"));
    Ok(())
}

#[test]
fn score_goes_past_a_broken_image_and_fails_at_the_end() -> Result<()> {
    let model = fixture("tiny-owl2");
    let (a, c) = (
        fixture("tiny-owl2/images/astronaut_96x96.png"),
        fixture("tiny-owl2/images/coffee_96x64.png"),
    );
    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\ntruncated")?;
    let b = broken.to_string_lossy().into_owned();
    for batch_size in ["1", "8"] {
        let out = biqa(&[
            "score",
            "--model",
            &model,
            &a,
            &b,
            &c,
            "--json",
            "--batch-size",
            batch_size,
        ]);
        assert_eq!(out.status.code(), Some(1));
        let json: Value = serde_json::from_slice(&out.stdout)?;
        let rows = json.as_array().context("array")?;
        assert_eq!(rows.len(), 3);
        for (row, want) in [&rows[0], &rows[2]]
            .into_iter()
            .zip([0.580386757850647, 0.6240459680557251])
        {
            assert!((row["score"].as_f64().context("score")? - want).abs() < 1e-4);
            assert!(row.get("error").is_none());
        }
        let mut keys: Vec<&str> = rows[1]
            .as_object()
            .context("object")?
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["error", "image"]);
        assert_eq!(rows[1]["image"], b.as_str());
        assert!(
            rows[1]["error"]
                .as_str()
                .context("error")?
                .contains("broken.png")
        );
        let err = String::from_utf8(out.stderr)?;
        assert!(err.contains("1 of 3 images"), "{err}");
    }
    // The table: two scored rows and one error row.
    let out = biqa(&["score", "--model", &model, &a, &b, &c]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout)?;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert_eq!(lines.iter().filter(|l| l.contains("error:")).count(), 1);
    assert!(lines[2].contains("broken.png") && lines[2].contains("error:"));
    let help = String::from_utf8(biqa(&["score", "--help"]).stdout)?;
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("continues past images"), "{help}");
    Ok(())
}

#[test]
fn probes_and_synth_write_their_files() -> Result<()> {
    let model = fixture("tiny-owl2");
    let img = fixture("tiny-owl2/images/astronaut_96x96.png");
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("lens");
    let o = biqa(&[
        "probe",
        "lens",
        "--model",
        &model,
        &img,
        "--top-k",
        "4",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lens: Value = serde_json::from_str(&std::fs::read_to_string(out.join("lens.json"))?)?;
    assert_eq!(lens["layers"].as_array().context("layers")?.len(), 3);
    assert!(std::fs::read(out.join("lens.png"))?.starts_with(b"\x89PNG"));
    assert!(std::fs::read_to_string(out.join("lens.csv"))?.starts_with("layer,kind,rank"));

    let out = dir.path().join("att");
    let o = biqa(&[
        "probe",
        "attention",
        "--model",
        &model,
        &img,
        "--describe",
        "--max-new-tokens",
        "6",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let att: Value = serde_json::from_str(&std::fs::read_to_string(out.join("attention.json"))?)?;
    let names: Vec<&str> = att["average"]["segments"]
        .as_array()
        .context("segments")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names, ["prompt", "image", "description", "conclusion"]);
    assert!(std::fs::read(out.join("attention.png"))?.starts_with(b"\x89PNG"));
    assert!(
        std::fs::read_to_string(out.join("attention.csv"))?
            .starts_with("sample,query,segment,start,end,share")
    );

    let out = dir.path().join("traj");
    let o = biqa(&[
        "probe",
        "trajectories",
        "--model",
        &model,
        &img,
        &fixture("tiny-owl2/images/coffee_96x64.png"),
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("trajectories.json").is_file() && out.join("trajectories.png").is_file());
    let csv = std::fs::read_to_string(out.join("trajectories.csv"))?;
    assert!(csv.starts_with("layer,word,share,top1_share"));
    assert_eq!(csv.lines().count(), 1 + 3 * 5);

    let out = dir.path().join("synth");
    let o = biqa(&[
        "synth",
        "--out",
        &out.to_string_lossy(),
        "--per-photo",
        "1",
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest = std::fs::read_to_string(out.join("manifest.csv"))?;
    assert!(manifest.starts_with("image,mos,level,distortion,strength,source"));
    assert_eq!(manifest.lines().count(), 1 + 9 * 36, "nine bundled photos");
    Ok(())
}

#[test]
fn train_from_a_toml_config_then_score_the_result() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("synth");
    let out = biqa(&[
        "synth",
        "--out",
        &data.to_string_lossy(),
        "--per-photo",
        "1",
    ]);
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = format!(
        r#"model = "{model}"
output = "run"
recipe = {{ kind = "two_stage", stage1_steps = 2, stage2_steps = 2 }}
batch_size = 2
lr = 1e-3
checkpoint_every = 1

[data]
one_stage = "synth/one_stage_train.json"
image_folder = "synth"

[trainable]
freeze_vision = true
lora = {{ rank = 4, alpha = 8.0, targets = ["q_proj", "v_proj.multiway.1"] }}
"#,
        model = fixture("tiny-owl2")
    );
    let config = dir.path().join("train.toml");
    std::fs::write(&config, toml)?;
    let out = biqa(&["train", "--config", &config.to_string_lossy()]);
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = dir.path().join("run");
    for f in [
        "metrics.csv",
        "metrics.jsonl",
        "loss.png",
        "final/model.safetensors",
        "final/config.json",
    ] {
        anyhow::ensure!(run.join(f).is_file(), "{f} missing");
    }
    anyhow::ensure!(
        std::fs::read_to_string(run.join("metrics.csv"))?
            .lines()
            .count()
            == 5
    );
    let img = fixture("tiny-owl2/images/astronaut_96x96.png");
    let out = biqa(&[
        "score",
        "--model",
        &run.join("final").to_string_lossy(),
        &img,
    ]);
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Resuming the finished run says it is complete, exits 0 and trains nothing.
    let out = biqa(&["train", "--config", &config.to_string_lossy(), "--resume"]);
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(String::from_utf8_lossy(&out.stdout).contains("already complete"));
    anyhow::ensure!(
        std::fs::read_to_string(run.join("metrics.csv"))?
            .lines()
            .count()
            == 5
    );
    // A config with an unknown key is refused with the key named.
    std::fs::write(
        &config,
        "model = \"x\"\noutput = \"y\"\nlr = 1.0\nrecipe = { kind = \"one_stage\", steps = 1 }\nbatchsize = 2\n",
    )?;
    let out = biqa(&["train", "--config", &config.to_string_lossy()]);
    anyhow::ensure!(!out.status.success());
    anyhow::ensure!(String::from_utf8_lossy(&out.stderr).contains("batchsize"));
    Ok(())
}

/// A `--layers` range up to `usize::MAX` is clipped to the model's layers (it used to walk the whole range), and a
/// range past the last layer is refused naming the layers there are (issue #16).
#[test]
fn probe_layer_ranges_are_bounded_by_the_model() -> Result<()> {
    let model = fixture("tiny-owl2");
    let img = fixture("tiny-owl2/images/astronaut_96x96.png");
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("att");
    let run = |layers: &str| {
        biqa(&[
            "probe",
            "attention",
            "--model",
            &model,
            &img,
            "--layers",
            layers,
            "--out",
            &out.to_string_lossy(),
        ])
    };
    let o = run("0..18446744073709551615");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run("5..9");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--layers 5..9") && err.contains("0..1"),
        "{err}"
    );
    Ok(())
}

/// `synth --per-photo u64::MAX` is a one-line error about the size, not a "capacity overflow" panic (issue #16).
#[test]
fn an_impossible_synth_size_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let o = biqa(&[
        "synth",
        "--out",
        &dir.path().join("s").to_string_lossy(),
        "--per-photo",
        "18446744073709551615",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error:") && err.contains("exceeds the limit"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    Ok(())
}

/// A PNG whose iCCP profile inflates to 1 GiB is decoded within the ancillary-data budget (issue #16: the header
/// probe took 3.2 GB on such a file): scoring it succeeds under a 600 MB address-space limit.
#[test]
fn an_icc_bomb_is_decoded_within_the_memory_budget() -> Result<()> {
    let bomb = fixture("hostile/icc_bomb.png");
    let model = fixture("tiny-owl2");
    let o = Command::new("bash")
        .arg("-c")
        .arg("ulimit -v 600000 && exec \"$0\" score --model \"$1\" \"$2\" --json")
        .arg(env!("CARGO_BIN_EXE_biqa"))
        .arg(&model)
        .arg(&bomb)
        .output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout)?;
    assert!(v[0]["score"].as_f64().is_some(), "{v}");
    Ok(())
}

/// `biqa bench` on the CPU: every row measured, positive and finite, in the table and the JSON; a device that is
/// not compiled in is a typed error, not a panic.
#[test]
fn bench_measures_every_row() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("bench.json");
    let model = biqa_testkit::fixture("tiny-owl2");
    let image = biqa_testkit::fixture("tiny-owl2/images/astronaut_96x96.png");
    let out = biqa(&[
        "bench",
        "--model",
        model.to_str().context("path")?,
        "--image",
        image.to_str().context("path")?,
        "--batch",
        "3",
        "--tokens",
        "12",
        "--repeats",
        "1",
        "--json",
        json.to_str().context("path")?,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "load",
        "cold start",
        "batch 1",
        "batch 3",
        "ms/token",
        "LoRA",
    ] {
        anyhow::ensure!(stdout.contains(row), "no {row:?} row in\n{stdout}");
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    for key in [
        "load_s",
        "cold_start_s",
        "score_batch1_ms",
        "score_batch_images_per_s",
        "lora_step_s",
    ] {
        let x = v[key].as_f64().with_context(|| format!("{key} in {v}"))?;
        anyhow::ensure!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    // A difference of two timings ((t_N − t_1) / (N − 1)): on the tiny model a stall in t_1 can outweigh 11 tokens,
    // so only its presence is checked (no timing assertions in tests).
    let decode = v["decode_ms_per_token"]
        .as_f64()
        .context("decode_ms_per_token")?;
    anyhow::ensure!(decode.is_finite(), "decode_ms_per_token = {decode}");
    anyhow::ensure!(v["score_tokens"].as_u64().is_some_and(|n| n > 9), "{v}");
    if !cfg!(feature = "cuda") {
        let out = biqa(&["--device", "cuda", "bench", "--model", "x", "--image", "y"]);
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(
            !out.status.success() && err.contains("not compiled into this build"),
            "{err}"
        );
    }
    Ok(())
}
