//! `more classify`: PNG and JPEG files classified on ciphertexts the way the browser does — the 16 full-size
//! sample angiograms (PNG) and a synthetic photo-like JPEG of a dark "3" on light paper — and clear errors
//! for files that are not images, images that are too large, and models that take no images.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn samples() -> PathBuf {
    let data = std::env::var_os("MORE_DATA").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data"));
    let dir = data.join("angio/samples");
    assert!(dir.join("labels.csv").exists(), "sample angiograms not found in {}", dir.display());
    dir
}

fn more(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_more")).args(args).current_dir(root()).output().expect("runs")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn sample_angiograms_are_classified_on_ciphertexts() {
    let dir = samples();
    let csv = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    let rows: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .map(|(f, v)| (dir.join(f.trim()).display().to_string(), v.trim().to_string()))
        .collect();
    assert_eq!(rows.len(), 16);
    let mut args = vec!["classify", "--model", "models/angio-cnn.morenn", "--json"];
    args.extend(rows.iter().map(|(f, _)| f.as_str()));
    let v = json(&more(&args));
    let answers = v.as_array().unwrap();
    assert_eq!(answers.len(), 16);
    let mut right = 0;
    for (a, (file, view)) in answers.iter().zip(&rows) {
        assert_eq!(a["file"], file.as_str());
        assert_eq!(a["size"], serde_json::json!([512, 512]));
        // The decrypted answer is the plaintext model's answer.
        assert_eq!(a["label"], a["plaintext_label"], "{a}");
        assert!(a["max_abs_diff"].as_f64().unwrap() < 1e-3, "{a}");
        let p: f64 = a["probabilities"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-4, "{a}");
        right += usize::from(a["label"] == view.as_str());
    }
    // The shipped model is 99% accurate on val; these 16 val frames include one of its two mistakes.
    assert!(right >= 14, "{right}/16 sample frames classified right");
}

#[test]
fn a_jpeg_of_a_digit_on_paper_is_read_as_mnist_was_made() {
    let v = json(&more(&[
        "classify",
        "--model",
        "models/mnist-cnn-relu.morenn",
        "--json",
        "crates/cli/tests/fixtures/three-on-paper.jpg",
    ]));
    let a = &v[0];
    assert_eq!(a["size"], serde_json::json!([240, 200]));
    assert_eq!(a["label"], "3", "{a}");
    assert_eq!(a["plaintext_label"], "3", "{a}");
}

#[test]
fn bad_files_and_models_get_clear_errors() {
    let dir = std::env::temp_dir().join(format!("more-classify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Not an image (whatever its name says).
    let fake = dir.join("scan.png");
    std::fs::write(&fake, b"not an image at all").unwrap();
    // A real PNG whose header declares 9000 pixels of width: refused before its pixels are decoded.
    let wide = dir.join("wide.png");
    {
        let file = std::fs::File::create(&wide).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 9000, 1);
        enc.set_color(png::ColorType::Grayscale);
        enc.write_header().unwrap().write_image_data(&vec![0u8; 9000]).unwrap();
    }
    // A truncated PNG (the first 100 bytes of a sample).
    let cut = dir.join("cut.png");
    let sample = std::fs::read(samples().join("val-3-rca.png")).unwrap();
    std::fs::write(&cut, &sample[..100]).unwrap();
    let out = more(&[
        "classify",
        "--model",
        "models/angio-cnn.morenn",
        fake.to_str().unwrap(),
        wide.to_str().unwrap(),
        cut.to_str().unwrap(),
        samples().join("val-3-rca.png").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stderr.contains("scan.png: not a PNG or JPEG file"), "{stderr}");
    assert!(stderr.contains("wide.png: the image is too large (9000x1"), "{stderr}");
    assert!(stderr.contains("cut.png: not a readable PNG"), "{stderr}");
    assert!(stderr.contains("3 of 4 images could not be classified"), "{stderr}");
    // The good file in the same call is still classified.
    assert!(stdout.contains("val-3-rca.png: RCA"), "{stdout}");

    let out = more(&["classify", "--model", "models/wbc-mlp.morenn", fake.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not take images"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A real `more-server` on a free local port, in this process (models from `models/`).
fn serve() -> String {
    use more_server::{AppState, EngineConfig, Limits, Registry, app};
    let registry = Registry::load_dir(root().join("models")).unwrap();
    let state = AppState::new(
        registry,
        EngineConfig { workers: 2, queue: 64, max_batch_samples: 8, ..EngineConfig::default() },
        Limits::default(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || rt.block_on(async move { axum::serve(listener, app(state)).await.unwrap() }));
    format!("http://{addr}")
}

#[test]
fn through_a_server_the_answers_match_the_local_model() {
    let url = serve();
    let dir = samples();
    let files = ["val-3-rca.png", "val-1-lca.png", "val-13-lca.png"].map(|f| dir.join(f).display().to_string());
    let mut remote = vec!["classify", "--server", url.as_str(), "--model-id", "angio-cnn", "--json"];
    remote.extend(files.iter().map(String::as_str));
    let mut local = vec!["classify", "--model", "models/angio-cnn.morenn", "--json"];
    local.extend(files.iter().map(String::as_str));
    let (r, l) = (json(&more(&remote)), json(&more(&local)));
    for (a, b) in r.as_array().unwrap().iter().zip(l.as_array().unwrap()) {
        assert_eq!(a["label"], b["label"], "{a} vs {b}");
        let pa: Vec<f64> = a["probabilities"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let pb: Vec<f64> = b["probabilities"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert!(pa.iter().zip(&pb).all(|(x, y)| (x - y).abs() < 1e-4), "{pa:?} vs {pb:?}");
        assert!(a["server_timing"].as_str().unwrap().contains("compute"), "{a}");
    }
    // Unknown model: the server's list in the message.
    let out = more(&["classify", "--server", url.as_str(), "--model-id", "nope", files[0].as_str()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it lists: angio-cnn"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing listening: a clear error, not a hang.
    let out = more(&["classify", "--server", "http://127.0.0.1:9", "--model-id", "angio-cnn", files[0].as_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"), "{}", String::from_utf8_lossy(&out.stderr));
}
