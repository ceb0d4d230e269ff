//! `biqa eval` and `biqa assess` end to end on the tiny checkpoint and a small synthetic set: resumption after an
//! interruption (no image twice, none lost, the same rows), error rows for missing images (and `--strict`), the
//! summary's keys and files, `--compare`, and repeated sampled answers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Result, ensure};
use biqa_testkit::fixture;
use serde_json::Value;

fn biqa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_biqa"))
        .args(args)
        .output()
        .expect("the biqa binary runs")
}

fn model() -> String {
    fixture("tiny-owl2").display().to_string()
}

/// A small synthetic set (one crop of each bundled photo at every distortion level).
fn synth(dir: &Path) -> Result<PathBuf> {
    let out = dir.join("synth");
    let o = biqa(&[
        "synth",
        "--out",
        out.to_str().unwrap_or_default(),
        "--per-photo",
        "1",
        "--seed",
        "3",
    ]);
    ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Ok(out.join("manifest.csv"))
}

fn eval(manifest: &Path, out: &Path, pipeline: &str, extra: &[&str]) -> Output {
    let m = model();
    let mut args = vec![
        "eval",
        "--model",
        &m,
        "--pipeline",
        pipeline,
        "--dataset",
        "synth",
        manifest.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
        "--max-new-tokens",
        "6",
        "--batch-size",
        "3",
        "--json",
    ];
    args.extend_from_slice(extra);
    biqa(&args)
}

fn rows(out: &Path) -> Result<Vec<Value>> {
    std::fs::read_to_string(out.join("results.jsonl"))?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// A row without its timings (which differ between runs).
fn untimed(mut v: Value) -> Value {
    if let Some(a) = v.get_mut("assessment").and_then(Value::as_object_mut) {
        a.remove("seconds");
        if let Some(passes) = a.get_mut("passes").and_then(Value::as_array_mut) {
            for p in passes {
                if let Some(p) = p.as_object_mut() {
                    p.remove("seconds");
                }
            }
        }
    }
    v
}

#[test]
fn an_interrupted_eval_resumes_without_losing_or_repeating_an_image() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let manifest = synth(tmp.path())?;
    let full = tmp.path().join("full");
    let o = eval(&manifest, &full, "two-stage", &["--limit", "9"]);
    ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = rows(&full)?;
    ensure!(want.len() == 9);
    // The interrupted run: four complete lines and a torn fifth, as a kill mid-write leaves them.
    let cut = tmp.path().join("cut");
    std::fs::create_dir_all(&cut)?;
    std::fs::copy(full.join("run.json"), cut.join("run.json"))?;
    let text = std::fs::read_to_string(full.join("results.jsonl"))?;
    let lines: Vec<&str> = text.lines().collect();
    let torn = format!(
        "{}\n{}",
        lines[..4].join("\n"),
        &lines[4][..lines[4].len() / 2]
    );
    std::fs::write(cut.join("results.jsonl"), torn)?;
    let o = eval(&manifest, &cut, "two-stage", &["--limit", "9"]);
    ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = rows(&cut)?;
    ensure!(got.len() == 9, "{} rows after resuming", got.len());
    for (g, w) in got.into_iter().zip(want) {
        ensure!(untimed(g) == untimed(w), "a resumed row differs");
    }
    // Another pipeline into the same folder is refused rather than mixed in.
    let o = eval(&manifest, &cut, "direct", &["--limit", "9"]);
    ensure!(!o.status.success());
    ensure!(String::from_utf8_lossy(&o.stderr).contains("run.json"));
    Ok(())
}

#[test]
fn the_summary_has_every_key_and_file_and_compare_puts_runs_side_by_side() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let manifest = synth(tmp.path())?;
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let o = eval(&manifest, &a, "direct", &["--instability", "2,2"]);
    ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: Value = serde_json::from_slice(&o.stdout)?;
    for k in [
        "n",
        "srcc",
        "plcc",
        "plcc_logistic",
        "krcc",
        "rmse_logistic",
        "accuracy",
        "errors",
        "timing",
        "confusion",
        "per_distortion",
        "instability",
    ] {
        ensure!(s.get(k).is_some(), "summary.json lacks {k}");
    }
    let images = std::fs::read_to_string(&manifest)?.lines().count() - 1;
    ensure!(
        s["n"] == images && s["errors"] == 0,
        "{} of {images}",
        s["n"]
    );
    ensure!(s["srcc"]["value"]["lo"].as_f64() <= s["srcc"]["value"]["hi"].as_f64());
    ensure!(s["per_distortion"].as_array().map_or(0, Vec::len) >= 3);
    ensure!(s["instability"]["sessions"].as_array().map_or(0, Vec::len) == 2);
    for f in [
        "summary.json",
        "summary.md",
        "scatter.png",
        "confusion.png",
        "instability.jsonl",
    ] {
        ensure!(a.join(f).is_file(), "no {f}");
    }
    let o = eval(&manifest, &b, "one-stage", &["--limit", "6", "--attention"]);
    ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sb: Value = serde_json::from_slice(&std::fs::read(b.join("summary.json"))?)?;
    let segments = sb["attention"]["segments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        segments.iter().any(|s| s == "image") && segments.iter().any(|s| s == "prompt"),
        "{segments:?}"
    );
    let total: f64 = sb["attention"]["mean"]
        .as_array()
        .map_or(0.0, |v| v.iter().filter_map(Value::as_f64).sum());
    ensure!((total - 1.0).abs() < 1e-6, "the shares sum to {total}");
    ensure!(b.join("attention.png").is_file());
    let o = biqa(&[
        "eval",
        "--compare",
        a.to_str().unwrap_or_default(),
        b.to_str().unwrap_or_default(),
    ]);
    ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = String::from_utf8_lossy(&o.stdout);
    ensure!(md.contains("| pipeline | direct | one-stage |"), "{md}");
    ensure!(md.contains("SRCC") && md.contains("instability, sample level"));
    Ok(())
}

#[test]
fn a_missing_image_is_an_error_row_and_strict_stops() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let manifest = synth(tmp.path())?;
    let first = std::fs::read_to_string(&manifest)?
        .lines()
        .nth(2)
        .and_then(|l| l.split(',').next().map(str::to_owned))
        .unwrap_or_default();
    std::fs::remove_file(manifest.parent().unwrap_or(tmp.path()).join(&first))?;
    let out = tmp.path().join("run");
    let o = eval(&manifest, &out, "direct", &["--limit", "5"]);
    ensure!(
        !o.status.success(),
        "a failed image must fail the run at the end"
    );
    let r = rows(&out)?;
    ensure!(r.len() == 5, "the other images are kept");
    let bad: Vec<&Value> = r.iter().filter(|v| v.get("error").is_some()).collect();
    ensure!(bad.len() == 1 && bad[0]["image"] == first.as_str());
    let s: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json"))?)?;
    ensure!(s["errors"] == 1 && s["n"] == 4);
    let strict = tmp.path().join("strict");
    let o = eval(&manifest, &strict, "direct", &["--limit", "5", "--strict"]);
    ensure!(!o.status.success());
    ensure!(String::from_utf8_lossy(&o.stderr).contains(&first));
    ensure!(
        rows(&strict)?.len() == 1,
        "strict stops at the failed image"
    );
    Ok(())
}

#[test]
fn assess_repeats_sampled_answers_with_a_majority() -> Result<()> {
    let img = fixture("tiny-owl2/images/coffee_96x64.png");
    let m = model();
    let o = biqa(&[
        "assess",
        "--model",
        &m,
        "--pipeline",
        "one-stage",
        img.to_str().unwrap_or_default(),
        "--samples",
        "3",
        "--temperature",
        "1.0",
        "--max-new-tokens",
        "6",
        "--json",
    ]);
    ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout)?;
    let samples = v[0]["samples"].as_array().cloned().unwrap_or_default();
    ensure!(samples.len() == 3);
    ensure!(v[0].get("agree").is_some());
    // Distinct seeds give distinct answers.
    ensure!(samples[0]["passes"][0]["token_ids"] != samples[1]["passes"][0]["token_ids"]);
    Ok(())
}
